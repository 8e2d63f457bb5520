"""Listwise reranking with a chat model behind an OpenAI-compatible endpoint (vLLM, llama.cpp's
server, SGLang, Ollama, a hosted API): RankGPT's sliding window, over HTTP."""

from __future__ import annotations

import math
import threading
from typing import Any, ClassVar

import numpy as np

from ..options import check_positive_int
from .listwise_order import PermutationRepairs, SlidingWindow, log_repairs, parse_answer
from .listwise_prompt import DEFAULT_SYSTEM_PROMPT, ListwisePrompt, window_labels
from .ranker import Ranker
from .remote import RemoteRerankerError, _httpx


class OpenAIListwiseReranker(Ranker):
    """A chat model served by an OpenAI-compatible ``/chat/completions`` endpoint, ranking listwise.

    The same prompt, sliding window, permutation repair and scores as
    :class:`~.llm_listwise.ListwiseLLMReranker` with ``method="generate"`` (a hosted model gives no
    logits to rank from, so there is no ``"first"`` here): each window is one chat completion at
    temperature 0; a document's raw score is ``1 / rank`` within its query's list.

    Args:
        base_url: the API's base, e.g. ``"http://127.0.0.1:8000/v1"`` (``/chat/completions`` is appended).
        model: the served model's name (the request's ``model``).
        api_key: sent as ``Authorization: Bearer <api_key>``.
        window_size, step, passes: the sliding window (20, half the window, 1).
        system_prompt, max_passage_words: the prompt (:class:`~.listwise_prompt.ListwisePrompt`).
        max_tokens: the answer's budget; default: enough for the full order of a window.
        timeout: seconds per request.
        extra_body: more fields for every request (e.g. ``{"chat_template_kwargs": {"enable_thinking": False}}``
            for a vLLM-served Qwen3).

    Thread-safe (one pooled HTTP client); its async methods run the sync ones in a worker thread.
    """

    model_type = "llm-listwise-openai"
    listwise: ClassVar[bool] = True
    batch_size = 1  # unused: one request per window

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        window_size: int = 20,
        step: int | None = None,
        passes: int = 1,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        max_passage_words: int = 100,
        max_tokens: int | None = None,
        timeout: float = 120.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        httpx = _httpx()
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be the served model's name, got {model!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be a positive, finite number of seconds, got {timeout!r}")
        if max_tokens is not None:
            check_positive_int(max_tokens, "max_tokens")
        check_positive_int(max_passage_words, "max_passage_words")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model_name_or_path = self.url
        self.served_model = model
        self.window = SlidingWindow(window_size, step, passes)
        self.prompt = ListwisePrompt(system_prompt, max_passage_words)
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.permutation_repairs = PermutationRepairs()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=float(timeout))
        self._lock = threading.Lock()  # guards permutation_repairs; the client itself is thread-safe

    def __repr__(self) -> str:
        return f"OpenAIListwiseReranker({self.url!r}, model={self.served_model!r})"

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def _complete(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        """One chat completion's text; a refused request or an answer without one is a
        :class:`RemoteRerankerError` naming the status and what the server said."""
        body = {**self.extra_body, "model": self.served_model, "messages": messages}
        body.update(temperature=0.0, max_tokens=max_tokens)
        httpx = _httpx()
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as err:
            raise RemoteRerankerError(f"cannot reach {self.url}: {err}") from err
        if response.status_code != 200:
            raise RemoteRerankerError(
                f"{self.url} answered {response.status_code}: {response.text[:300]}", status=response.status_code
            )
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise RemoteRerankerError(
                f"{self.url} answered without a chat completion (choices[0].message.content): {response.text[:300]}"
            ) from err
        return content if isinstance(content, str) else ""

    def _rank_window(self, query: str, passages: list[str]) -> tuple[list[int], PermutationRepairs]:
        labels = window_labels(len(passages), letters=False)
        # about 4 tokens per "[12] > " in any tokenizer, and room for a closing remark
        budget = self.max_tokens or 4 * len(passages) + 16
        answer = self._complete(self.prompt.messages(query, passages, labels), budget)
        return parse_answer(answer, labels)

    def _score(self, queries: list[str], docs: list[str], batch_size: int) -> np.ndarray:
        scores, repairs = self.window.scores(queries, docs, self._rank_window)
        with self._lock:
            self.permutation_repairs.add(repairs)
        log_repairs(repairs, repr(self))
        return scores
