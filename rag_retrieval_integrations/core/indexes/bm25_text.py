"""``BM25Analyzer``: how ``BM25Index`` turns a text into terms, through ``bm25s``'s own tokenizer.

Lower-casing, a token regex, stopword removal and a Snowball stemmer (PyStemmer), in that order:
exactly ``bm25s.tokenize(texts, lower, token_pattern, stopwords, stemmer)``, so that an index and
``bm25s`` given the same settings see the same terms. Every setting is a plain value (a stemmer is
named by its language), so the analyzer is saved in the index's manifest and rebuilt on load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

BM25_EXTRA = "rag-retrieval[bm25]"
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's CountVectorizer pattern, bm25s's default


def import_bm25s() -> Any:
    """The ``bm25s`` module, or an ``ImportError`` naming the extra that installs it."""
    try:
        import bm25s
    except ImportError as e:
        raise ImportError(f"BM25Index needs bm25s: pip install '{BM25_EXTRA}'") from e
    return bm25s


def _stemmer(language: str | None) -> Any:
    if language is None:
        return None
    try:
        import Stemmer
    except ImportError as e:
        raise ImportError(f"stemmer={language!r} needs PyStemmer: pip install '{BM25_EXTRA}'") from e
    try:
        return Stemmer.Stemmer(language)
    except KeyError:
        known = sorted(Stemmer.algorithms())
        raise ValueError(f"stemmer={language!r} is not a Snowball language; choose one of {known} or None") from None


@dataclass(frozen=True)
class BM25Analyzer:
    """The text-to-terms settings of a BM25 index.

    Args:
        lower: lower-case texts first.
        token_pattern: the regex whose matches are the tokens (default: words of 2+ characters).
        stopwords: a ``bm25s`` language (``"en"``/``"english"``, ``"de"``, ``"fr"``, ...), a list of
            words, or ``None`` to keep every word.
        stemmer: a Snowball language for PyStemmer (``"english"``, ``"german"``, ...) or ``None``.
    """

    lower: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    stopwords: str | tuple[str, ...] | None = "en"
    stemmer: str | None = "english"

    def __post_init__(self) -> None:
        if not isinstance(self.lower, bool):
            raise TypeError(f"lower must be a bool, got {self.lower!r}")
        if not isinstance(self.token_pattern, str) or not self.token_pattern:
            raise ValueError(f"token_pattern must be a non-empty regex, got {self.token_pattern!r}")
        if isinstance(self.stopwords, (list, tuple)):
            if not all(isinstance(w, str) for w in self.stopwords):
                raise TypeError("stopwords must be a language name, a list of strings or None")
            object.__setattr__(self, "stopwords", tuple(self.stopwords))  # hashable and JSON-able
        elif self.stopwords is not None and not isinstance(self.stopwords, str):
            raise TypeError(f"stopwords must be a language name, a list of strings or None, got {self.stopwords!r}")
        if self.stemmer is not None and not isinstance(self.stemmer, str):
            raise TypeError(
                f"stemmer must be a Snowball language name or None, got {type(self.stemmer).__name__} "
                "(a named stemmer is saved with the index; a callable could not be)"
            )
        _stemmer(self.stemmer)  # an unknown language fails here, not at the first add

    def tokenize(self, texts: Sequence[str]) -> list[list[str]]:
        """The terms of each text, in order (a text with none gives ``[]``)."""
        if not texts:
            return []
        bm25s = import_bm25s()
        stopwords = list(self.stopwords) if isinstance(self.stopwords, tuple) else self.stopwords
        return bm25s.tokenize(
            list(texts),
            lower=self.lower,
            token_pattern=self.token_pattern,
            stopwords=stopwords or [],
            stemmer=_stemmer(self.stemmer),
            return_ids=False,
            show_progress=False,
        )

    def as_dict(self) -> dict[str, Any]:
        """The settings as the manifest records them."""
        record = asdict(self)
        if isinstance(self.stopwords, tuple):
            record["stopwords"] = list(self.stopwords)
        return record
