"""``BaseReranker``: the base of the checkpoint-backed model families.

A family reads a checkpoint (a folder, a hub id or a GGUF file), loads its model on a device,
implements :meth:`~.ranker.Ranker._score` and registers itself with
:func:`~.registry.register_model_type`. The public API (``score_pairs``, ``compute_score``,
``rank``, ``rank_many``, async forms) is :class:`~.ranker.Ranker`'s, the same for every ranker;
this class adds what a checkpoint brings: device and dtype, ``max_length`` and long documents,
truncation accounting, thread safety, and the hooks trainers use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, Union

import numpy as np
import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm

from ..device import resolve_device, resolve_dtype
from ..errors import InvalidCheckpointError
from ..options import check_positive_int
from ..text.pair_encoding import EncodedPairs
from ..text.truncation import TruncationStats, warn_if_noticeable
from .checkpoint import CheckpointInfo, read_checkpoint
from .loading import capped_max_length, corrupt_weights_error
from .ranker import Ranker

logger = logging.getLogger(__name__)

LongDocMode = Literal["truncate", "split-max"]
ModelPath = Union[str, "os.PathLike[str]", CheckpointInfo]
"""What a family's constructor takes: a folder, a hub id, or the checkpoint already read."""
LONG_DOC_MODES: tuple[str, ...] = ("truncate", "split-max")

_Self = TypeVar("_Self", bound="BaseReranker")

DEFAULT_OVERLAP = 32


@contextmanager
def _locked_scope(lock: threading.RLock, *scopes: AbstractContextManager[Any]) -> Iterator[None]:
    with lock, ExitStack() as stack:
        for scope in scopes:
            stack.enter_context(scope)
        yield


@dataclass(frozen=True)
class ModelCard:
    """How a family's trained checkpoints present themselves on the Hugging Face hub: the model card's
    ``library_name`` (the library that loads them as they are), ``pipeline_tag`` and ``tags``."""

    library: str
    pipeline_tag: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Loaded:
    """A model and its tokenizer already in memory, for :meth:`BaseReranker.from_model`."""

    model: Any
    tokenizer: Any


class BaseReranker(Ranker):
    """Scores (query, document) pairs and ranks documents; one subclass per model family.

    Args:
        model_name_or_path: a local checkpoint folder or a Hugging Face hub id (or the
            :class:`CheckpointInfo` already read for it, as ``Reranker(...)`` passes).
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``...; default: cuda, then mps, then cpu.
        dtype: ``"float32"`` (default), ``"float16"`` or ``"bfloat16"``; half precision only off the CPU.
        max_length: tokens per model input (query, document and special tokens); default: the
            model's own limit, at most 512 for encoders and 1024 for decoder LLMs (a ColBERT
            checkpoint's saved document length). A value above the position embeddings is
            capped at them, with a warning.
        batch_size: model inputs per forward pass.
        long_doc: ``"truncate"`` cuts a document to what fits; ``"split-max"`` cuts it into
            overlapping token windows and scores it with its best window.
        overlap: tokens shared by consecutive windows in ``"split-max"`` mode (default 32).
            Windows share at most half their tokens: where a short ``max_length`` or a long
            query leaves a window too small for the default, the overlap is reduced for that
            window; an explicit value above half the largest window is an error.
        min_doc_share: share of ``max_length`` always left to the document; a query is
            truncated only when it alone would leave less than that.
        show_progress_bar: show a progress bar while scoring; default: when logging is at INFO.
        verbose: the original ``rag_retrieval`` package's switch (0 or 1): ``show_progress_bar``'s
            default when that is not given. Messages go through ``logging``, as everywhere here.
        trust_remote_code, revision, token: passed to ``transformers`` when loading.
        gguf_file: a GGUF file (llama.cpp format) inside the folder or hub repo to load instead of
            safetensors, as ``from_pretrained(..., gguf_file=)`` does (needs the ``gguf`` extra;
            transformers dequantizes it on every load: :func:`convert_gguf` converts once).
        loaded: a model and tokenizer already in memory (:meth:`from_model`); ``None`` loads them
            from the checkpoint.

    Construction is one template: this ``__init__`` reads the checkpoint and sets what every
    family shares, then calls the family's :meth:`_load` (the model, the tokenizer, ``max_length``),
    then checks the long-document options against what was loaded. A family's own ``__init__``
    checks and keeps its own options first, then calls this one.

    Thread-safe: a loaded model scores one call at a time. A fast tokenizer keeps its
    truncation and padding settings as state of one shared Rust object, so two threads
    tokenizing with one model at once would corrupt each other's batches (seen as changed
    scores and "Unable to create tensor" errors); on the CPU one forward pass already uses
    every core, and on a GPU passes queue up anyway, so serializing costs little.
    """

    model_type: ClassVar[str] = ""
    padding_side: ClassVar[str] = "right"  # where :meth:`collate` pads (decoders read the last position)
    detection_priority: ClassVar[int | None] = None
    """Where detection asks this family's :meth:`matches` (lower first; the built-in families use
    10 to 60); ``None``: never detected, only chosen by ``model_type=`` or our metadata file.
    Declared on the class itself: a subclass does not take part unless it declares its own."""
    peft_task_type: ClassVar[str | None] = None
    """The peft ``TaskType`` name that fits the head :meth:`for_training` builds (``"SEQ_CLS"``...)."""
    reads_gguf: ClassVar[bool] = False
    """Whether the family loads a GGUF file (decoder LLMs do; GGUF holds no encoder models)."""
    replaces_saved: ClassVar[tuple[frozenset[str], ...]] = ()
    """Groups of options that each describe one thing (the decoders' ``prompt_format`` and
    ``prompt_template``): one of a group given to ``Reranker(...)`` drops all of the group that
    the checkpoint's metadata saved, instead of both reaching the family."""
    card: ClassVar[ModelCard] = ModelCard("transformers", "text-ranking", ("reranker",))
    """What the model card of a checkpoint trained as this family says (the trainers write it)."""
    setting_options: ClassVar[frozenset[str]] = frozenset({"max_length", "long_doc", "show_progress_bar"})
    reranker_backbone: ClassVar[bool] = False
    """Whether ``rag-retrieval-train reranker`` trains this family (its ``backbone`` values); declared
    on the class itself, like ``detection_priority``: a subclass is not a backbone unless it says so."""

    @classmethod
    def matches(cls, info: CheckpointInfo) -> bool:
        """Whether a checkpoint without our metadata file is of this family, from what it says
        about itself (never its name). Asked in ``detection_priority`` order, so a rule may assume
        that the families before it said no. Families that are never detected keep this ``False``."""
        return False

    @classmethod
    def for_training(cls: type[_Self], base_model: ModelPath, **options: Any) -> _Self:
        """This family on ``base_model`` with the head it trains, on the CPU, ready for a trainer.

        The head is the checkpoint's own when it has one of this family's, else a new one
        (families document which). Trainers call this instead of building models themselves, so
        training encodes and scores exactly as ``Reranker(path)`` does afterwards. ``options``
        as for the constructor. Families that cannot be trained raise ``NotImplementedError``.
        """
        raise NotImplementedError(f"{cls.__name__} ({cls.model_type!r}) has no training head")

    def reranker_options(self) -> dict[str, Any]:
        """The constructor options a trained checkpoint saves in our metadata (``"reranker_options"``)
        so that ``Reranker(path)`` scores as this object does (an LLM's prompt template, its token)."""
        return {}

    @classmethod
    def from_checkpoint(cls: type[_Self], model_name_or_path: ModelPath, **options: Any) -> _Self:
        """This family loaded from a checkpoint folder, hub id or :class:`CheckpointInfo` (what
        ``Reranker(path, model_type)`` calls once it has chosen the family); the same as ``cls(...)``."""
        return cls(model_name_or_path, **options)

    @classmethod
    def from_model(
        cls: type[_Self], model_name_or_path: ModelPath, model: torch.nn.Module, tokenizer: Any, **options: Any
    ) -> _Self:
        """This family around a model and tokenizer already in memory.

        Trainers build the model they train (a fresh 1-logit head, LoRA layers) and wrap it
        here, so training scores the pairs with exactly the encoding and head that inference
        uses. ``model_name_or_path`` is the checkpoint the model was loaded from (its files
        are read for metadata, not loaded again); ``options`` as for the constructor.
        """
        return cls(model_name_or_path, loaded=Loaded(model, tokenizer), **options)

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
        long_doc: LongDocMode = "truncate",
        overlap: int | None = None,
        min_doc_share: float = 0.25,
        show_progress_bar: bool | None = None,
        verbose: int | bool | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        token: str | bool | None = None,
        gguf_file: str | None = None,
        loaded: Loaded | None = None,
    ) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if max_length is not None:
            check_positive_int(max_length, "max_length")
        if long_doc not in LONG_DOC_MODES:
            raise ValueError(f"long_doc must be one of {list(LONG_DOC_MODES)}, got {long_doc!r}")
        if overlap is not None and (not isinstance(overlap, int) or isinstance(overlap, bool) or overlap < 0):
            raise ValueError(f"overlap must be a non-negative integer, got {overlap!r}")
        if isinstance(min_doc_share, bool) or not isinstance(min_doc_share, (int, float)):
            raise TypeError(f"min_doc_share must be a number between 0 and 1, got {min_doc_share!r}")
        if not 0.0 < min_doc_share < 1.0:
            raise ValueError(f"min_doc_share must be between 0 and 1 (exclusive), got {min_doc_share!r}")
        if isinstance(model_name_or_path, CheckpointInfo):
            self.checkpoint = model_name_or_path
        else:
            self.checkpoint = read_checkpoint(model_name_or_path, revision=revision, token=token, gguf_file=gguf_file)
        self.model_name_or_path = self.checkpoint.path
        if self.checkpoint.gguf_file is not None and not self.reads_gguf:
            raise InvalidCheckpointError(
                f"{self.checkpoint.gguf_file!r} in {self.checkpoint.path!r} is a GGUF file, and the {self.model_type!r} "
                "family cannot load one: GGUF holds decoder LLMs (model_type='llm', 'llm-zero-shot', ...); leave "
                "model_type unset to detect it"
            )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_length = max_length
        self.long_doc: LongDocMode = long_doc
        self._overlap_given = overlap is not None
        self.overlap = DEFAULT_OVERLAP if overlap is None else overlap
        self.min_doc_share = float(min_doc_share)
        if verbose is not None and (not isinstance(verbose, int) or verbose < 0):
            raise ValueError(f"verbose must be 0 or 1 (or True/False), got {verbose!r}")
        self.show_progress_bar = (
            bool(verbose) if show_progress_bar is None and verbose is not None else show_progress_bar
        )
        self.hf_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision, "token": token}
        if self.checkpoint.gguf_file is not None:
            self.hf_kwargs["gguf_file"] = self.checkpoint.gguf_file
            logger.info(
                "%s: transformers dequantizes %s on every load; convert_gguf() writes an ordinary folder once",
                self.checkpoint.path,
                self.checkpoint.gguf_file,
            )
        self._lock = threading.RLock()
        self.position_limit: int | None = None  # the longest input the weights take, where the family knows it
        self.truncation_totals = TruncationStats()  # what truncation cut since loading (the eval CLI reports it)
        self._truncation: TruncationStats | None = None  # the open truncation_scope
        self._truncation_warned: set[str] = set()  # the kinds of call that have warned once
        try:
            self._load(loaded)
        except SafetensorError as err:  # no ValueError, and its message names no file
            raise corrupt_weights_error(self.checkpoint.path, err) from err
        self._check_long_doc_options()

    def _load(self, loaded: Loaded | None) -> None:
        """Load the model and tokenizer (or take ``loaded``'s), put them on the device and set
        ``max_length`` (and ``position_limit`` where the family knows it). Called once, by ``__init__``;
        a family that scores without a model (a user's keyword scorer) keeps this one, which loads nothing."""

    # ---- long documents ----------------------------------------------------------------------

    def _document_window_limit(self) -> int | None:
        """The most document tokens one model input holds, beside a one-token query and the
        prompt or special tokens at ``max_length``; ``None`` where there is no such limit."""
        return None

    def _check_long_doc_options(self) -> None:
        """Refuse, at construction, a ``max_length`` with no room for a document and an explicit
        ``overlap`` that no window can hold (the default one is reduced where it does not fit)."""
        limit = self._document_window_limit()
        if limit is None:
            return
        if limit < 1:
            raise ValueError(
                f"max_length={self.max_length} leaves no room for a document once the special tokens, the prompt "
                "and a one-token query are in; raise max_length"
            )
        if self.long_doc == "split-max" and self._overlap_given and self.overlap > limit // 2:
            raise ValueError(
                f"overlap={self.overlap} never fits: at max_length={self.max_length} a window holds at most {limit} "
                f"document tokens and windows share at most half of them ({limit // 2}); lower overlap, raise "
                "max_length, or leave overlap unset to get the default reduced where it does not fit"
            )

    # ---- truncation that users can see ------------------------------------------------------

    @contextmanager
    def truncation_scope(self, what: str) -> Iterator[TruncationStats]:
        """Count what truncation cuts over a block and warn once at its end (see ``truncation.py``).

        Every scoring call is a scope of its own; an index wraps a whole build (many encoding
        calls) in one, so that it warns once. Nested scopes count into the outermost.
        """
        if self._truncation is not None:
            yield self._truncation
            return
        stats = self._truncation = TruncationStats()
        try:
            yield stats
        finally:
            self._truncation = None
            self.truncation_totals.merge(stats)
            # a WARNING the first time per kind of call; a loop of calls (a RAG chain answering many
            # questions) then logs at INFO instead of repeating it, and truncation_totals keeps counting
            warned = self._truncation_warned
            level = logging.INFO if what in warned else logging.WARNING
            if warn_if_noticeable(stats, what, self.max_length, self.position_limit, level):
                warned.add(what)

    def _note_truncation(self, full_tokens: np.ndarray, kept_tokens: np.ndarray) -> None:
        """Record documents of ``full_tokens`` tokens of which ``kept_tokens`` were scored."""
        with self.truncation_scope("encoding") as stats:
            stats.add(full_tokens, kept_tokens)

    # ---- differentiable scoring, for trainers -------------------------------------------------

    def encode_pairs(self, queries: list[str], docs: list[str]) -> EncodedPairs:
        """Token ids of one model input per pair, exactly as scoring builds them (truncated)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained as a pair scorer")

    def collate(self, queries: list[str], docs: list[str]) -> dict[str, torch.Tensor]:
        """A padded batch (CPU tensors) of the pairs, for :meth:`forward_scores`."""
        from ..text.batching import pad_batch

        encoded = self.encode_pairs(queries, docs)
        return pad_batch(encoded, np.arange(len(encoded)), self.tokenizer.pad_token_id, self.padding_side)

    def forward_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Raw scores of a :meth:`collate` batch, shape ``(batch,)``, with gradients when enabled."""
        raise NotImplementedError(f"{type(self).__name__} cannot be trained as a pair scorer")

    # ---- what Ranker's scoring runs inside ----------------------------------------------------

    def _scoring(self, **settings: Any) -> AbstractContextManager[Any]:
        """One scoring call: the model's lock (one call at a time), the call's own ``max_length``,
        ``long_doc`` and ``show_progress_bar`` where it gives them, and a truncation count of its own."""
        return _locked_scope(self._lock, self._call_settings(**settings), self.truncation_scope("scoring"))

    @contextmanager
    def _call_settings(
        self, max_length: int | None = None, long_doc: str | None = None, show_progress_bar: bool | None = None
    ) -> Iterator[None]:
        """The settings one call gives, checked as the constructor checks them and in force while
        the call holds the lock (so no other call sees them), then restored."""
        saved = (self.max_length, self.long_doc, self.show_progress_bar)
        try:
            if long_doc is not None:
                if long_doc not in LONG_DOC_MODES:
                    raise ValueError(f"long_doc must be one of {list(LONG_DOC_MODES)}, got {long_doc!r}")
                self.long_doc = long_doc
            if show_progress_bar is not None:
                self.show_progress_bar = bool(show_progress_bar)
            if max_length is not None:
                check_positive_int(max_length, "max_length")
                self.max_length = capped_max_length(max_length, self.position_limit, self.checkpoint.path)
                self._apply_max_length()
            if max_length is not None or long_doc not in (None, saved[1]):
                self._check_long_doc_options()  # a window too small, an overlap no window holds
            yield
        finally:
            self.max_length, self.long_doc, self.show_progress_bar = saved
            if max_length is not None:
                self._apply_max_length()

    def _apply_max_length(self) -> None:
        """Hand ``max_length`` to whatever of the loaded model keeps its own copy (a
        sentence-transformers model's ``max_seq_length``); families that read ``self.max_length``
        when they encode keep this one, which does nothing."""

    def _show_progress(self) -> bool:
        """Progress bars are shown when asked for, or by default when logging is at INFO."""
        if self.show_progress_bar is None:
            return logger.getEffectiveLevel() <= logging.INFO
        return bool(self.show_progress_bar)

    def _progress(self, total: int, desc: str, unit: str = "pair") -> tqdm:
        return tqdm(total=total, desc=desc, unit=unit, disable=not self._show_progress())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.model_name_or_path!r}, model_type={self.model_type!r}, "
            f"device={str(self.device)!r}, dtype={str(self.dtype).replace('torch.', '')!r}, "
            f"max_length={self.max_length}, long_doc={self.long_doc!r})"
        )
