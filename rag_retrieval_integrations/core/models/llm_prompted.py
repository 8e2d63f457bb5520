"""``PromptedDecoderReranker``: a decoder that reads each pair through a :class:`PairPromptTemplate`.

FlagEmbedding's LLM reranker input (``bos + "A: {query}" + "\\n" + "B: {passage}" + "\\n" + prompt``)
is read by two heads: the yes-token LM head (:class:`~.llm_yes_token.LLMReranker`) and a
sequence-classification head on the last token (:class:`~.llm_classifier.LLMClassifierReranker`).
What they share (the template option, its encoding, saving it with a trained checkpoint) is here.
"""

from __future__ import annotations

from typing import Any

from ..text.pair_encoding import EncodedPairs
from .base import ModelPath
from .llm_base import DecoderReranker
from .llm_inputs import PairPromptTemplate, encode_flag_pairs


def prompt_template_of(value: PairPromptTemplate | dict[str, Any] | None) -> PairPromptTemplate:
    """``value`` as a template: the default for ``None``, a dict's fields, or the template itself."""
    if value is None:
        return PairPromptTemplate()
    if isinstance(value, PairPromptTemplate):
        return value
    if isinstance(value, dict):
        return PairPromptTemplate.from_dict(value)
    raise TypeError(f"prompt_template must be a PairPromptTemplate, a dict or None, got {type(value).__name__}")


class PromptedDecoderReranker(DecoderReranker):
    """A decoder LLM reading each pair through a :class:`PairPromptTemplate`.

    Args:
        prompt_template: a :class:`PairPromptTemplate` (or its dict); checkpoints trained by
            this project carry theirs in ``rag_retrieval.json``.
        **options: see :class:`DecoderReranker` and :class:`~.base.BaseReranker`.
    """

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        prompt_template: PairPromptTemplate | dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.prompt_template = prompt_template_of(prompt_template)
        super().__init__(model_name_or_path, **options)

    def reranker_options(self) -> dict[str, Any]:
        return {"prompt_template": self.prompt_template.to_dict()}

    def _encode(self, queries: list[str], docs: list[str], split_long_docs: bool) -> EncodedPairs:
        assert self.max_length is not None
        return encode_flag_pairs(
            self.tokenizer,
            self.prompt_template,
            queries,
            docs,
            max_length=self.max_length,
            min_doc_share=self.min_doc_share,
            split_long_docs=split_long_docs,
            overlap=self.overlap,
        )
