"""The base class every model family subclasses, and the family registry.

A family implements :meth:`BaseReranker._score` (raw scores for aligned query/document
lists) and registers itself with :func:`register_model_type`; validation, ``normalize``,
``rank``, ``rank_many`` and result objects come from here, identical for every family.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from abc import ABC, ABCMeta, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Literal, TypeVar, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..device import resolve_device, resolve_dtype
from ..errors import InvalidCheckpointError, UnknownModelTypeError
from ..results import RankedResults
from ..text.inputs import check_docs, check_pairs, check_positive_int, check_query, unknown_options
from ..text.pair_encoding import EncodedPairs
from ..text.truncation import TruncationStats, warn_if_noticeable
from .checkpoint import CheckpointInfo, read_checkpoint
from .loading import corrupt_weights_error

logger = logging.getLogger(__name__)

LongDocMode = Literal["truncate", "split-max"]
ModelPath = Union[str, "os.PathLike[str]", CheckpointInfo]
"""What a family's constructor takes: a folder, a hub id, or the checkpoint already read."""
LONG_DOC_MODES: tuple[str, ...] = ("truncate", "split-max")

_REGISTRY: dict[str, type[BaseReranker]] = {}
_R = TypeVar("_R", bound="type[BaseReranker]")
_Self = TypeVar("_Self", bound="BaseReranker")


def register_model_type(name: str) -> Callable[[_R], _R]:
    """Class decorator that makes a family available as ``Reranker(path, model_type=name)``."""

    def decorator(cls: _R) -> _R:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model_type {name!r} is already registered by {_REGISTRY[name].__name__}")
        cls.model_type = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def available_model_types() -> list[str]:
    """The ``model_type`` values that ``Reranker`` accepts."""
    return sorted(_REGISTRY)


def detection_order() -> list[type[BaseReranker]]:
    """The registered families that take part in detection, in the order they are asked: those
    declaring a ``detection_priority`` on their own class (it is not inherited), lowest first,
    ties by ``model_type``."""
    detected = [cls for cls in _REGISTRY.values() if vars(cls).get("detection_priority") is not None]
    return sorted(detected, key=lambda cls: (cls.detection_priority, cls.model_type))


def get_model_class(model_type: str) -> type[BaseReranker]:
    """The family registered as ``model_type``; an :class:`UnknownModelTypeError` listing the valid ones."""
    if model_type not in _REGISTRY:
        raise UnknownModelTypeError(
            f"unknown model_type {model_type!r}; valid values are {available_model_types()} (or None to detect it)"
        )
    return _REGISTRY[model_type]


def sigmoid(scores: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-scores))


def rank_from_raw(
    query: str, docs: list[str], raw: np.ndarray, normalize: bool, top_k: int | None = None
) -> RankedResults:
    """A ranking from raw scores in input order: the sigmoid first when ``normalize`` (so scores that
    saturate to 1.0 tie, and keep input order), then the stable sort, then ``top_k``. ``rank``,
    ``rank_many``, the remote client and the server's micro-batches all build results here."""
    return RankedResults.from_scores(query, docs, sigmoid(raw) if normalize else raw).top_k(top_k)


DEFAULT_OVERLAP = 32


class _FamilyMeta(ABCMeta):
    """Wraps every family's construction: a weights file safetensors cannot read becomes an
    error naming the file, and the long-document options are checked once the most derived
    ``__init__`` has loaded the model (only then are ``max_length`` and the tokenizer known)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        from safetensors import SafetensorError

        try:
            self = super().__call__(*args, **kwargs)
        except SafetensorError as err:
            target = args[0] if args else kwargs.get("model_name_or_path")
            path = target.path if isinstance(target, CheckpointInfo) else os.fspath(target or "")
            raise corrupt_weights_error(path, err) from err
        self._check_long_doc_options()
        return self


class BaseReranker(ABC, metaclass=_FamilyMeta):
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
        trust_remote_code, revision, token: passed to ``transformers`` when loading.
        gguf_file: a GGUF file (llama.cpp format) inside the folder or hub repo to load instead of
            safetensors, as ``from_pretrained(..., gguf_file=)`` does (needs the ``gguf`` extra;
            transformers dequantizes it on every load: :func:`convert_gguf` converts once).

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
    fixed_options: ClassVar[frozenset[str]] = frozenset()
    """Constructor options of a parent class that this family sets itself (``Reranker`` refuses them)."""
    reads_gguf: ClassVar[bool] = False
    """Whether the family loads a GGUF file (decoder LLMs do; GGUF holds no encoder models)."""

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
    def from_loaded(
        cls: type[_Self], model_name_or_path: ModelPath, model: torch.nn.Module, tokenizer: Any, **options: Any
    ) -> _Self:
        """This family around a model and tokenizer already in memory.

        Trainers build the model they train (a fresh 1-logit head, LoRA layers) and wrap it
        here, so training scores the pairs with exactly the encoding and head that inference
        uses. ``model_name_or_path`` is the checkpoint the model was loaded from (its files
        are read for metadata, not loaded again); ``options`` as for the constructor.
        """
        self = cls.__new__(cls)
        self._preloaded = (model, tokenizer)
        try:
            self.__init__(model_name_or_path, **options)  # type: ignore[misc]
        finally:
            del self._preloaded
        self._check_long_doc_options()
        return self

    def _preloaded_or(self, which: Literal["model", "tokenizer"], load: Callable[[], Any]) -> Any:
        """The object given to :meth:`from_loaded`, else ``load()``."""
        preloaded = getattr(self, "_preloaded", None)
        if preloaded is None:
            return load()
        return preloaded[0] if which == "model" else preloaded[1]

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
        trust_remote_code: bool = False,
        revision: str | None = None,
        token: str | bool | None = None,
        gguf_file: str | None = None,
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
        self.show_progress_bar = show_progress_bar
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

    # ---- what a family implements -------------------------------------------------------

    @abstractmethod
    def _score(self, queries: list[str], docs: list[str], batch_size: int, **kwargs: Any) -> np.ndarray:
        """Raw scores (float64, one per pair) for the aligned ``queries[i]``, ``docs[i]``.

        ``queries`` typically repeats the same string many times (``rank`` and ``rank_many``
        pass one entry per document); families should encode each distinct query once.
        A family may return one row of scores per pair (shape ``(pairs, k)``, e.g. one per
        layer); ``kwargs`` are the family's per-call options (e.g. ``cutoff_layers``).
        """

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
            warned = self.__dict__.setdefault("_truncation_warned", set())
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

    # ---- public API ------------------------------------------------------------------------

    def compute_score(
        self,
        pairs: Sequence[tuple[str, str]] | tuple[str, str],
        *,
        normalize: bool = False,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[float] | list[list[float]]:
        """Score ``(query, document)`` pairs, in input order.

        Raw scores are what the model's head outputs; ``normalize=True`` maps them to (0, 1)
        with a sigmoid so that one threshold works across model kinds. ``kwargs`` are the
        family's per-call options; a family asked for several scores per pair (an LLM with
        several ``cutoff_layers``) returns one list per layer.
        """
        queries, docs = check_pairs(pairs)
        scores = self._scores(queries, docs, normalize, batch_size, **kwargs)
        return scores.T.tolist() if scores.ndim == 2 else scores.tolist()

    def rank(
        self,
        query: str,
        docs: Sequence[str],
        *,
        top_k: int | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> RankedResults:
        """Rank ``docs`` for ``query``, best first; each result keeps its original index."""
        query = check_query(query)
        docs = check_docs(docs)
        raw = self._single_scores([query] * len(docs), docs, False, batch_size, **kwargs)
        return rank_from_raw(query, docs, raw, normalize, top_k)

    def rank_many(
        self,
        queries: Sequence[str],
        docs_per_query: Sequence[Sequence[str]],
        *,
        top_k: int | None = None,
        normalize: bool = False,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[RankedResults]:
        """Rank several queries' documents in one batched pass over all pairs."""
        queries = check_docs(queries, "queries")
        if isinstance(docs_per_query, (str, bytes)) or not isinstance(docs_per_query, Sequence):
            raise TypeError(f"docs_per_query must be a list of lists of strings, got {type(docs_per_query).__name__}")
        if len(queries) != len(docs_per_query):
            raise ValueError(
                f"rank_many needs one list of documents per query: got {len(queries)} queries "
                f"and {len(docs_per_query)} document lists"
            )
        doc_lists = [check_docs(d, f"docs_per_query[{i}]") for i, d in enumerate(docs_per_query)]
        flat_queries = [q for q, d in zip(queries, doc_lists) for _ in d]
        flat_docs = [doc for d in doc_lists for doc in d]
        raw = self._single_scores(flat_queries, flat_docs, False, batch_size, **kwargs)
        bounds = np.cumsum([0] + [len(d) for d in doc_lists])
        return [
            rank_from_raw(q, d, raw[bounds[i] : bounds[i + 1]], normalize, top_k)
            for i, (q, d) in enumerate(zip(queries, doc_lists))
        ]

    # ---- the same, awaitable -------------------------------------------------------------------

    async def acompute_score(
        self, pairs: Sequence[tuple[str, str]] | tuple[str, str], **options: Any
    ) -> list[float] | list[list[float]]:
        """:meth:`compute_score` in a worker thread, so that the event loop keeps running meanwhile
        (a remote model overrides it with a native async HTTP call)."""
        return await asyncio.to_thread(self.compute_score, pairs, **options)

    async def arank(self, query: str, docs: Sequence[str], **options: Any) -> RankedResults:
        """:meth:`rank` in a worker thread (natively async for a remote model)."""
        return await asyncio.to_thread(self.rank, query, docs, **options)

    async def arank_many(
        self, queries: Sequence[str], docs_per_query: Sequence[Sequence[str]], **options: Any
    ) -> list[RankedResults]:
        """:meth:`rank_many` in a worker thread (natively async for a remote model)."""
        return await asyncio.to_thread(self.rank_many, queries, docs_per_query, **options)

    # ---- helpers for families --------------------------------------------------------------

    def _scores(
        self, queries: list[str], docs: list[str], normalize: bool, batch_size: int | None, **kwargs: Any
    ) -> np.ndarray:
        batch_size = self.batch_size if batch_size is None else check_positive_int(batch_size, "batch_size")
        accepted = set(inspect.signature(self._score).parameters) - {"queries", "docs", "batch_size"}
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected per-call option(s): "
                f"{unknown_options(unknown, accepted | {'normalize', 'batch_size', 'top_k'})}"
            )
        if not docs:
            return np.zeros(0, dtype=np.float64)
        # A pair given twice is scored once: duplicates get bit-equal scores (so a stable sort keeps
        # their input order; two rows of one padded batch can differ in the last bits), and less work.
        pair_index: dict[tuple[str, str], int] = {}
        inverse = np.fromiter(
            (pair_index.setdefault(pair, len(pair_index)) for pair in zip(queries, docs)), np.int64, len(docs)
        )
        if len(pair_index) < len(docs):
            queries, docs = [q for q, _ in pair_index], [d for _, d in pair_index]
        with self._lock, self.truncation_scope("scoring"):
            scores = np.asarray(self._score(queries, docs, batch_size, **kwargs), dtype=np.float64)
        if len(pair_index) < len(inverse):
            scores = scores[inverse]
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        return sigmoid(scores) if normalize else scores

    def _single_scores(
        self, queries: list[str], docs: list[str], normalize: bool, batch_size: int | None, **kwargs: Any
    ) -> np.ndarray:
        """One score per pair, for ranking."""
        scores = self._scores(queries, docs, normalize, batch_size, **kwargs)
        if scores.ndim != 1:
            raise ValueError(
                f"ranking needs one score per document, but this call gives {scores.shape[1]} (one per cutoff "
                "layer); pass a single layer, e.g. cutoff_layers=[n], or use compute_score for all of them"
            )
        return scores

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
