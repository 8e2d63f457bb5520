"""Listwise reranking with a local chat LLM: RankGPT-style generation or FIRST-style logits."""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from ..errors import InvalidCheckpointError
from .base import BaseReranker, Loaded, ModelPath
from .listwise_order import PermutationRepairs, SlidingWindow, log_repairs, parse_answer
from .listwise_prompt import DEFAULT_SYSTEM_PROMPT, ListwisePrompt, window_labels
from .llm_base import decoder_max_length, load_decoder_tokenizer, require_chat_template, with_pad_token
from .loading import load_pretrained
from .registry import register_model_type

logger = logging.getLogger(__name__)

DEFAULT_LISTWISE_MAX_LENGTH = 4096
ListwiseMethod = Literal["generate", "first"]


@register_model_type("llm-listwise")
class ListwiseLLMReranker(BaseReranker):
    """Listwise reranking with a chat LLM (a Hugging Face folder or a GGUF file): the model reads
    the query and a window of labelled passages and orders them; a sliding window covers longer lists.

    Two ways to read the model's order:

    * ``method="generate"`` (RankGPT): the model writes the order (``[2] > [1] > [3]``), greedily;
      the answer is parsed, and repaired where it is not a full permutation (missing identifiers
      after the ranked ones in input order, duplicates and unknown identifiers dropped; counted in
      :attr:`permutation_repairs` and logged).
    * ``method="first"`` (FIRST, Reddy et al. 2024): passages are labelled ``A``, ``B``...; one forward
      pass reads the logits of the first identifier after ``[`` and orders the window by them. One
      pass per window, no generation, no parsing; at most 26 passages per window.

    Scores: a document's raw score is ``1 / rank`` within its query's list (1.0, 0.5, 0.33...), so a
    call's scores compare within a query, not across queries or calls. ``compute_score`` ranks the
    documents of each query in the call together (one pair alone scores 1.0), ``rank_many`` ranks
    each query on its own, and ``normalize=True`` applies the sigmoid as for every ranker (it is
    not a probability here).

    Args:
        method: ``"generate"`` or ``"first"``.
        window_size, step, passes: the sliding window (:class:`SlidingWindow`; 20, half the window and 1 by default).
        system_prompt: the system turn (``None``: none, for chat templates that refuse one).
        max_passage_words: each passage is cut to this many words; a window whose prompt still
            passes ``max_length`` has its passages cut further, evenly, with a warning.
        max_new_tokens: the generation budget (``"generate"``); default: the full answer's length.
        **options: ``max_length`` (the longest prompt, default the model's limit, at most 4096),
            ``device``, ``dtype``, ``show_progress_bar`` and the loading options of :class:`BaseReranker`.
    """

    reads_gguf = True
    listwise: ClassVar[bool] = True
    setting_options = frozenset({"show_progress_bar"})

    def __init__(
        self,
        model_name_or_path: ModelPath,
        *,
        method: ListwiseMethod = "generate",
        window_size: int = 20,
        step: int | None = None,
        passes: int = 1,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        max_passage_words: int = 100,
        max_new_tokens: int | None = None,
        **options: Any,
    ) -> None:
        if method not in ("generate", "first"):
            raise ValueError(f"method must be 'generate' or 'first', got {method!r}")
        self.window = SlidingWindow(window_size, step, passes)
        if method == "first":
            window_labels(window_size, letters=True)  # at most 26 letters: refused here, before loading
        if options.get("long_doc", "truncate") != "truncate":
            raise ValueError(
                "a listwise model cuts each passage to max_passage_words; long_doc='split-max' does not apply to it"
            )
        if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens < 1):
            raise ValueError(f"max_new_tokens must be a positive integer or None, got {max_new_tokens!r}")
        if isinstance(max_passage_words, bool) or not isinstance(max_passage_words, int) or max_passage_words < 1:
            raise ValueError(f"max_passage_words must be a positive integer, got {max_passage_words!r}")
        self.method: ListwiseMethod = method
        self.prompt = ListwisePrompt(system_prompt, max_passage_words)
        self.max_new_tokens = max_new_tokens
        self.permutation_repairs = PermutationRepairs()  # since loading, as truncation_totals counts truncation
        super().__init__(model_name_or_path, **options)

    def _load(self, loaded: Loaded | None) -> None:
        path = self.checkpoint.path
        self.tokenizer = (
            with_pad_token(loaded.tokenizer, path)
            if loaded
            else load_decoder_tokenizer(self.checkpoint, self.hf_kwargs)
        )
        require_chat_template(self.tokenizer, path, "listwise reranking")
        self.model = (
            loaded.model
            if loaded
            else load_pretrained(
                AutoModelForCausalLM, self.checkpoint, "causal-LM head (a chat LLM)", dtype=self.dtype, **self.hf_kwargs
            )
        )
        self.model.to(self.device).eval()
        self.position_limit, self.max_length = decoder_max_length(
            self.model, self.max_length, DEFAULT_LISTWISE_MAX_LENGTH, path
        )
        if self.method == "first":
            self._label_ids = self._first_label_ids()

    # ---- one window ----------------------------------------------------------------------------

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]

    def _first_label_ids(self) -> list[int]:
        """The token of each letter as it follows ``[`` (what the model's first answer token is)."""
        bracket = self._ids("[")
        ids = []
        for label in window_labels(self.window.window_size, letters=True):
            with_label = self._ids("[" + label)
            if with_label[: len(bracket)] != bracket or len(with_label) != len(bracket) + 1:
                raise InvalidCheckpointError(
                    f"method='first' needs each identifier letter to be one token after '[', and {label!r} is not "
                    f"one in the tokenizer of {self.checkpoint.path!r}; use method='generate'"
                )
            ids.append(with_label[-1])
        return ids

    def _prompt_ids(self, query: str, passages: list[str], labels: list[str], reserve: int) -> list[int]:
        """The chat-templated prompt (assistant turn opened), its passages cut further, evenly, where
        it would leave fewer than ``reserve`` of ``max_length``'s positions for the answer."""
        assert self.max_length is not None
        prompt = self.prompt
        while True:
            messages = prompt.messages(query, passages, labels)
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = self._ids(text + ("[" if self.method == "first" else ""))
            if len(ids) + reserve <= self.max_length:
                if prompt is not self.prompt:
                    logger.warning(
                        "a window of %d passages does not fit max_length=%d at %d words each; cut to %d words",
                        len(passages),
                        self.max_length,
                        self.prompt.max_passage_words,
                        prompt.max_passage_words,
                    )
                return ids
            if prompt.max_passage_words == 1:
                raise ValueError(
                    f"max_length={self.max_length} cannot hold the listwise prompt of {len(passages)} passages even at "
                    "one word each; lower window_size or raise max_length"
                )
            prompt = ListwisePrompt(prompt.system_prompt, max(1, prompt.max_passage_words * 3 // 4))

    @torch.inference_mode()
    def _rank_window(self, query: str, passages: list[str]) -> tuple[list[int], PermutationRepairs]:
        if self.method == "first":
            labels = window_labels(len(passages), letters=True)
            ids = torch.tensor([self._prompt_ids(query, passages, labels, reserve=1)], device=self.device)
            logits = self.model(input_ids=ids, use_cache=False).logits[0, -1]
            label_logits = logits[self._label_ids[: len(passages)]].float().cpu().numpy()
            order = np.argsort(-label_logits, kind="stable").tolist()
            return order, PermutationRepairs(windows=1)
        labels = window_labels(len(passages), letters=False)
        budget = self.max_new_tokens or len(self._ids(" > ".join(f"[{label}]" for label in labels))) + 8
        ids = torch.tensor([self._prompt_ids(query, passages, labels, reserve=budget)], device=self.device)
        generated = self.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=budget,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        answer = self.tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True)
        return parse_answer(answer, labels)

    # ---- scoring -------------------------------------------------------------------------------

    def _score(self, queries: list[str], docs: list[str], batch_size: int) -> np.ndarray:
        with self._progress(len(set(queries)), "Ranking", unit="query") as progress:
            scores, repairs = self.window.scores(queries, docs, self._rank_window, progress.update)
        self.permutation_repairs.add(repairs)
        log_repairs(repairs, f"{type(self).__name__}({self.checkpoint.path!r})")
        return scores
