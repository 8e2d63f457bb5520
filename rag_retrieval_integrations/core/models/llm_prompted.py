"""``PromptedDecoderReranker``: a decoder that reads each pair in a named :class:`~.prompt_formats.PromptFormat`.

Two heads read such input: the LM head scoring answer tokens (:class:`~.llm_yes_token.LLMReranker`)
and a sequence-classification head on the last token (:class:`~.llm_classifier.LLMClassifierReranker`).
What they share is here: resolving the format (never guessed, see :func:`resolve_prompt_format`),
encoding pairs in it, and saving it with a trained checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

from ..errors import UnknownPromptFormatError
from ..text.pair_encoding import EncodedPairs
from .base import Loaded, ModelPath
from .checkpoint import CheckpointInfo, has_logit_score_head, is_decoder_only
from .llm_base import DecoderReranker
from .llm_inputs import PairPromptTemplate, encode_flag_pairs, encode_text_pairs
from .prompt_formats import (
    BGE_LAYERWISE,
    TRAINING_DEFAULT,
    PromptFormat,
    available_prompt_formats,
    format_of_template,
    get_prompt_format,
)

logger = logging.getLogger(__name__)

FORMAT_OPTIONS = frozenset({"prompt_format", "prompt_template"})
"""Options that each name the whole format: one given by the caller replaces any the checkpoint saved."""


def prompt_template_of(value: PairPromptTemplate | dict[str, Any]) -> PairPromptTemplate:
    """``value`` as a FlagEmbedding-style template: a dict's fields, or the template itself."""
    if isinstance(value, PairPromptTemplate):
        return value
    if isinstance(value, dict):
        return PairPromptTemplate.from_dict(value)
    raise TypeError(f"prompt_template must be a PairPromptTemplate, a dict or None, got {type(value).__name__}")


def is_native_layerwise(info: CheckpointInfo) -> bool:
    """bge-reranker-v2-minicpm-layerwise and its likes: remote code whose architecture says it
    (``LayerWiseMiniCPMForCausalLM``); its format is FlagEmbedding's."""
    return any("layerwise" in str(name).lower() for name in (info.config or {}).get("architectures") or [])


def resolve_prompt_format(
    info: CheckpointInfo,
    prompt_format: str | PromptFormat | dict[str, Any] | None,
    prompt_template: PairPromptTemplate | dict[str, Any] | None,
    *,
    yes_token: str | None = None,
    instruction: str | None = None,
) -> PromptFormat:
    """The format a decoder reads pairs in: ``prompt_format`` (a name, a format or a saved dict),
    else ``prompt_template`` (FlagEmbedding-style fields), else what the checkpoint's files say
    (native layerwise code).

    Raises:
        UnknownPromptFormatError: none of those says it (a plain causal LM from the hub): its
            message lists the formats and how to pass one.
        ValueError: both ``prompt_format`` and ``prompt_template``; ``instruction`` on a format without the slot.
    """
    if prompt_format is not None and prompt_template is not None:
        raise ValueError("pass prompt_format= or prompt_template=, not both (a template is a format of its own)")
    if prompt_format is not None:
        chosen = get_prompt_format(prompt_format)
    elif prompt_template is not None:
        chosen = format_of_template(prompt_template_of(prompt_template), yes_token)
    elif is_native_layerwise(info):
        chosen = BGE_LAYERWISE
    else:
        # a sentence-transformers CrossEncoder with a LogitScore head (how ST 5.4+ saves Qwen3-Reranker)
        # keeps its prompt as a Jinja chat template, which is not read as a format here: name it
        saved_by_st = (
            " It is a sentence-transformers CrossEncoder with a LogitScore head: its prompt is the chat "
            "template in its folder, which is not read as a format here; pass the named format it renders."
            if has_logit_score_head(info)
            else ""
        )
        raise UnknownPromptFormatError(
            f"{info.path!r} is a decoder LLM whose files do not say which prompt format it was trained with "
            "(no prompt_format in a rag_retrieval.json), and an LLM reranker scored in another format gives "
            "near-random scores. Pass the one it was trained with, e.g. Reranker(path, "
            f"prompt_format='qwen3-reranker'); known formats: {available_prompt_formats()} "
            "(docs/models.md, 'Prompt formats', says which checkpoints use which), or your own with "
            "prompt_template= or register_prompt_format(). For a chat model never trained to rerank, use "
            "model_type='llm-zero-shot'." + saved_by_st
        )
    if yes_token is not None and yes_token != chosen.yes_token:
        chosen = replace(chosen, yes_token=yes_token)
    return chosen if instruction is None else chosen.with_instruction(instruction)


def with_training_format(info: CheckpointInfo, options: dict[str, Any]) -> dict[str, Any]:
    """``for_training`` options with a format unless they name one: the one the base model's
    ``rag_retrieval.json`` saved (fine-tuning a checkpoint trained here keeps its format), else
    :data:`TRAINING_DEFAULT`. A model trained from a base model reads the format it is trained in,
    and saves it."""
    if options.get("prompt_format") is not None or options.get("prompt_template") is not None:
        return options
    saved = info.metadata.get("reranker_options") or {}
    for name in ("prompt_format", "prompt_template"):
        if saved.get(name) is not None:
            return {**options, name: saved[name]}
    logger.info("%s: training in the %r prompt format (saved with the model)", info.path, TRAINING_DEFAULT)
    return {**options, "prompt_format": TRAINING_DEFAULT}


class PromptedDecoderReranker(DecoderReranker):
    """A decoder LLM reading each pair in a :class:`~.prompt_formats.PromptFormat`.

    Args:
        prompt_format: the format's name (``"qwen3-reranker"``, ``"bge-reranker-v2-gemma"``, ...;
            :func:`~.prompt_formats.available_prompt_formats`), a ``PromptFormat`` or its dict;
            checkpoints trained by this project carry theirs in ``rag_retrieval.json``.
        prompt_template: instead of a format, FlagEmbedding-style :class:`PairPromptTemplate` fields.
        instruction: the task line of a format with an ``{instruction}`` slot (Qwen3-Reranker's).
        **options: see :class:`DecoderReranker` and :class:`~.base.BaseReranker`.

    A checkpoint whose format none of these gives is refused (:class:`UnknownPromptFormatError`).
    """

    replaces_saved: ClassVar[tuple[frozenset[str], ...]] = (FORMAT_OPTIONS,)

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        prompt_format: str | PromptFormat | dict[str, Any] | None = None,
        prompt_template: PairPromptTemplate | dict[str, Any] | None = None,
        instruction: str | None = None,
        **options: Any,
    ) -> None:
        self._format_request = (prompt_format, prompt_template, instruction)
        super().__init__(model_name_or_path, **options)

    def _format_yes_token(self) -> str | None:
        """A yes token the caller chose apart from the format (the yes-token family's option)."""
        return None

    def _load(self, loaded: Loaded | None) -> None:
        prompt_format, prompt_template, instruction = self._format_request
        # before the weights load: a checkpoint refused for its format costs no load
        try:
            self.prompt_format = resolve_prompt_format(
                self.checkpoint,
                prompt_format,
                prompt_template,
                yes_token=self._format_yes_token(),
                instruction=instruction,
            )
        except UnknownPromptFormatError:
            if loaded is not None or is_decoder_only(self.checkpoint.config or {}):
                raise
            # not a decoder at all (a BERT forced into an LLM family): the load's own error says
            # what is wrong with it; the format one would mislead
            super()._load(loaded)
            raise
        super()._load(loaded)

    @property
    def prompt_template(self) -> Any:
        """The format's template (a ``PairPromptTemplate`` or ``TextPromptTemplate``)."""
        return self.prompt_format.template

    def reranker_options(self) -> dict[str, Any]:
        return {"prompt_format": self.prompt_format.to_dict()}

    def _encode(self, queries: list[str], docs: list[str], split_long_docs: bool) -> EncodedPairs:
        assert self.max_length is not None
        encode = encode_flag_pairs if isinstance(self.prompt_template, PairPromptTemplate) else encode_text_pairs
        return encode(
            self.tokenizer,
            self.prompt_template,  # type: ignore[arg-type]
            queries,
            docs,
            max_length=self.max_length,
            min_doc_share=self.min_doc_share,
            split_long_docs=split_long_docs,
            overlap=self.overlap,
        )
