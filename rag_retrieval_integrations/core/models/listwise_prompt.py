"""The prompt of listwise LLM reranking: a query and a window of labelled passages, one chat turn.

The same messages go to a local chat model (through its chat template) and to an
OpenAI-compatible endpoint, so a local model and a served one rank from the same text.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

DEFAULT_SYSTEM_PROMPT = "You are a search relevance judge: you rank passages by how well they answer a search query."
LETTERS = string.ascii_uppercase


def window_labels(n: int, letters: bool) -> list[str]:
    """The identifiers of ``n`` passages: ``"1"``... or, for FIRST-style ranking, ``"A"``... (one token each)."""
    if letters:
        if n > len(LETTERS):
            raise ValueError(f"letter identifiers label at most {len(LETTERS)} passages, got a window of {n}")
        return list(LETTERS[:n])
    return [str(i) for i in range(1, n + 1)]


def cut_words(text: str, max_words: int) -> str:
    """``text`` cut to its first ``max_words`` words (whitespace collapsed), so one long passage
    cannot crowd the others out of the window."""
    words = text.split()
    return " ".join(words[:max_words])


@dataclass(frozen=True)
class ListwisePrompt:
    """The chat messages that ask a model to rank a window of passages.

    Args:
        system_prompt: the system turn; ``None`` leaves it out (for chat templates without one).
        max_passage_words: each passage is cut to this many words.
    """

    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    max_passage_words: int = 100

    def messages(self, query: str, passages: list[str], labels: list[str]) -> list[dict[str, str]]:
        """A system turn (unless ``None``) and one user turn holding the query, the labelled passages
        and the answer format (``[2] > [1] > [3]``, written with ``labels``)."""
        n = len(passages)
        listed = "\n".join(f"[{label}] {cut_words(p, self.max_passage_words)}" for label, p in zip(labels, passages))
        example = " > ".join(f"[{label}]" for label in (labels[1:2] + labels[:1] + labels[2:3]) or labels)
        user = (
            f"Rank the {n} passages below by their relevance to the search query: {query}\n"
            f"Each passage starts with its identifier in brackets.\n\n{listed}\n\n"
            f"Search query: {query}\n"
            f"List all {n} identifiers, the most relevant passage first, in the format {example}. "
            "Answer with the ranking only."
        )
        system = [] if self.system_prompt is None else [{"role": "system", "content": self.system_prompt}]
        return [*system, {"role": "user", "content": user}]
