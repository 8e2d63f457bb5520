"""Zero-shot reranking with any chat LLM through its own chat template."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from ..text.long_text import clip_for_truncation
from ..text.pair_encoding import EncodedPairs, unique
from ..text.truncation import estimate_clipped
from .base import Loaded, ModelPath
from .llm_base import DecoderReranker, require_chat_template
from .llm_inputs import assemble_inputs, token_id, truncate_query_ids
from .loading import load_pretrained
from .registry import register_model_type

DEFAULT_ZERO_SHOT_INSTRUCTION = (
    "Judge whether the document is relevant to the query, that is, whether it contains information that "
    'answers it. Answer only "Yes" or "No".'
)
DEFAULT_USER_TEMPLATE = "Query: {query}\n\nDocument: {document}\n\nIs the document relevant to the query?"

# Markers rendered through the chat template in place of the query and document, then cut out,
# so that the template's own text (roles, special tokens) surrounds real query/document tokens.
_QUERY_MARK, _DOC_MARK = "\x00RAGQUERY\x00", "\x00RAGDOC\x00"


@register_model_type("llm-zero-shot")
class ZeroShotLLMReranker(DecoderReranker):
    """Pointwise zero-shot reranking with a chat model: ``logit(yes) - logit(no)`` after the prompt.

    Each pair is rendered through the tokenizer's chat template (system: ``instruction``,
    user: ``user_template`` with the query and document, then the assistant turn starts);
    the raw score is the log-odds ``logit(yes_token) - logit(no_token)`` at the answer
    position, so ``normalize=True`` gives P(yes | yes or no).

    Args:
        instruction: the system message; ``None`` leaves the system turn out (for templates
            that reject one).
        user_template: the user message, with ``{query}`` and ``{document}`` placeholders.
        yes_token, no_token: the answer tokens; each must be a single token.
        **options: see :class:`DecoderReranker` and :class:`BaseReranker`.
    """

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        instruction: str | None = DEFAULT_ZERO_SHOT_INSTRUCTION,
        user_template: str = DEFAULT_USER_TEMPLATE,
        yes_token: str = "Yes",
        no_token: str = "No",
        **options: Any,
    ) -> None:
        if "{query}" not in user_template or "{document}" not in user_template:
            raise ValueError(f"user_template must contain {{query}} and {{document}}, got {user_template!r}")
        self.instruction = instruction
        self.user_template = user_template
        self.yes_token, self.no_token = yes_token, no_token
        super().__init__(model_name_or_path, **options)

    def _load(self, loaded: Loaded | None) -> None:
        super()._load(loaded)
        require_chat_template(self.tokenizer, self.checkpoint.path, "zero-shot reranking")
        self.yes_id = token_id(self.tokenizer, self.yes_token, "yes")
        self.no_id = token_id(self.tokenizer, self.no_token, "no")
        self._before_query, self._between, self._after_doc = self._template_parts()

    def _load_model(self) -> PreTrainedModel:
        return load_pretrained(
            AutoModelForCausalLM, self.checkpoint, "causal-LM head (a chat LLM)", dtype=self.dtype, **self.hf_kwargs
        )

    def _template_parts(self) -> tuple[list[int], list[int], list[int]]:
        """Token ids of the rendered template before the query, between query and document, after it."""
        messages = [] if self.instruction is None else [{"role": "system", "content": self.instruction}]
        messages.append({"role": "user", "content": self.user_template.format(query=_QUERY_MARK, document=_DOC_MARK)})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if (
            text.count(_QUERY_MARK) != 1
            or text.count(_DOC_MARK) != 1
            or text.index(_QUERY_MARK) > text.index(_DOC_MARK)
        ):
            raise ValueError("the chat template must render the query once, before the document")
        before, rest = text.split(_QUERY_MARK)
        between, after = rest.split(_DOC_MARK)
        # BPE tokenizers fold a space into the next word ("Query: what" -> "Query", ":", " what"):
        # the space before each placeholder goes with the text put there, as when rendered whole.
        self._query_lead = before[len(before.rstrip(" ")) :]
        self._doc_lead = between[len(between.rstrip(" ")) :]
        ids = lambda s: self.tokenizer(s, add_special_tokens=False, verbose=False)["input_ids"]
        return ids(before.rstrip(" ")), ids(between.rstrip(" ")), ids(after)

    def _encode(self, queries: list[str], docs: list[str], split_long_docs: bool) -> EncodedPairs:
        assert self.max_length is not None
        distinct, query_of_pair = unique(queries)
        query_ids = self.tokenizer([self._query_lead + q for q in distinct], add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        prompt_tokens = len(self._before_query) + len(self._between) + len(self._after_doc)
        query_ids = truncate_query_ids(query_ids, self.max_length, self.min_doc_share, prompt_tokens)
        heads = [self._before_query + query_ids[q] + self._between for q in query_of_pair]
        originals = docs
        if not split_long_docs:
            docs = clip_for_truncation(self.tokenizer, docs, self.max_length)
        bodies = self.tokenizer([self._doc_lead + d for d in docs], add_special_tokens=False, verbose=False)[
            "input_ids"
        ]
        encoded = assemble_inputs(
            heads,
            bodies,
            [self._after_doc] * len(docs),
            max_length=self.max_length,
            split_long_docs=split_long_docs,
            overlap=self.overlap,
        )
        if encoded.doc_tokens is not None:
            encoded.doc_tokens = estimate_clipped(encoded.doc_tokens, originals, docs)
        return encoded

    def _full_scores(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        extra = {"logits_to_keep": 1} if "logits_to_keep" in self._forward_params else {}
        logits = self.model(**self._inputs(batch), use_cache=False, **extra).logits[:, -1]
        return logits[:, self.yes_id] - logits[:, self.no_id]

    def _head_scores(self, last_hidden: torch.Tensor) -> torch.Tensor:
        logits = self.model.get_output_embeddings()(last_hidden)
        return logits[:, self.yes_id] - logits[:, self.no_id]
