"""``BM25Index``: lexical retrieval with BM25, scored by ``bm25s`` (sparse matrices, no server).

The index keeps each document's terms (as ids into its own vocabulary) and hands the corpus to
``bm25s.BM25``, which precomputes every (document, term) score into a sparse matrix; a query's
score vector is a sum of that matrix's columns. BM25's statistics (document frequencies, the
average length) belong to the whole corpus, so an add or delete marks the matrix stale and the
next search rebuilds it from the stored terms, in one vectorized pass (about 3 s per 100,000
documents of 60 terms on this project's 2-core machine): add in batches, not one by one.

Only documents holding at least one query term are returned (as Lucene does): a document BM25
scores for no term would be noise in a fusion or a reranker's candidates.

The folder written by :meth:`BM25Index.save` holds ``manifest.json`` (the analyzer and BM25
settings), ``documents.jsonl``, ``vocabulary.json`` (the terms, in id order) and ``terms.npy`` /
``offsets.npy`` (every document's term ids, concatenated, and where each document starts).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ..options import check_positive_int
from .bm25_text import DEFAULT_TOKEN_PATTERN, BM25Analyzer, import_bm25s
from .documents import IndexHit
from .file_index import FileIndex, Manifest

Method = Literal["lucene", "robertson", "atire", "bm25l", "bm25+"]
METHODS: tuple[str, ...] = ("lucene", "robertson", "atire", "bm25l", "bm25+")
TERMS_FILE = "terms.npy"
OFFSETS_FILE = "offsets.npy"
VOCABULARY_FILE = "vocabulary.json"
BM25_MODEL = "bm25"
"""What stands for a model where a tool takes one (``rag-retrieval-eval --model bm25``, mining): BM25 needs none."""


def names_bm25(model: Any) -> bool:
    """Whether ``model`` is the word ``bm25`` (and not a folder of that name), naming BM25 instead of a checkpoint."""
    return isinstance(model, str) and model == BM25_MODEL and not Path(model).exists()


def _check_float(value: Any, name: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


class BM25Index(FileIndex):
    """Documents searched by BM25 over their analyzed terms (``bm25s`` scores them).

    Args:
        k1: term-frequency saturation (``bm25s`` and Lucene default 1.5; 1.2 in Elasticsearch).
        b: length normalization, 0 (none) to 1 (full).
        delta: the ``bm25l`` / ``bm25+`` shift; ignored by the other methods.
        method: ``bm25s``'s variant: ``"lucene"`` (default), ``"robertson"``, ``"atire"``,
            ``"bm25l"`` or ``"bm25+"``.
        lower, token_pattern, stopwords, stemmer: the :class:`BM25Analyzer` (default: lower-cased
            words of 2+ characters, English stopwords removed, English Snowball stemmer).
        show_progress_bar: ``bm25s``'s progress bars while the matrix is built.

    ``k1``, ``b``, ``delta`` and ``method`` may change when the index is loaded (the matrix is
    rebuilt from the stored terms); the analyzer is fixed once documents are in.

    Example::

        index = BM25Index()
        index.add(["The giant panda is a bear.", "Paris is in France."], ids=["panda", "paris"])
        index.search("pandas are bears", k=1)    # [IndexHit(id='panda', ..., score=0.9...)]
        index.save("./bm25"); index = BM25Index.load("./bm25")
    """

    described_as: ClassVar[str] = "a BM25 index"
    index_format: ClassVar[str] = "rag-retrieval-bm25-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("analyzer", "bm25", "vocabulary_size", "num_terms")
    vector_files: ClassVar[tuple[str, ...]] = (TERMS_FILE, OFFSETS_FILE, VOCABULARY_FILE)
    required_files: ClassVar[tuple[str, ...]] = (TERMS_FILE, OFFSETS_FILE, VOCABULARY_FILE)
    build_settings: ClassVar[frozenset[str]] = frozenset({"lower", "token_pattern", "stopwords", "stemmer"})
    search_settings: ClassVar[frozenset[str]] = frozenset({"k1", "b", "delta", "method", "show_progress_bar"})
    family: ClassVar[None] = None
    model_noun: ClassVar[str] = "analyzer"
    model: None = None

    def __init__(
        self,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        delta: float = 0.5,
        method: Method = "lucene",
        lower: bool = True,
        token_pattern: str = DEFAULT_TOKEN_PATTERN,
        stopwords: str | Sequence[str] | None = "en",
        stemmer: str | None = "english",
        show_progress_bar: bool = False,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        import_bm25s()  # a missing extra fails when the index is made, not at the first search
        super().__init__()
        self.k1 = _check_float(k1, "k1", 0.0)
        self.b = _check_float(b, "b", 0.0, 1.0)
        self.delta = _check_float(delta, "delta", 0.0)
        self.method: Method = method
        self.analyzer = BM25Analyzer(lower, token_pattern, stopwords, stemmer)  # type: ignore[arg-type]
        self.show_progress_bar = bool(show_progress_bar)
        self._vocabulary: dict[str, int] = {}
        self._terms: list[np.ndarray] = []  # row i: document i's term ids (int32)
        self._bm25: Any = None  # the bm25s.BM25 of the current documents; None: stale

    # ---- encoding: texts to terms -----------------------------------------------------------

    def encode_documents(self, texts: Sequence[str]) -> list[list[str]]:
        """The analyzed terms of each text, as :meth:`add_vectors` takes them."""
        return self.analyzer.tokenize(texts)

    def encode_queries(self, queries: Sequence[str]) -> list[list[str]]:
        """The analyzed terms of each query, as :meth:`search_by_vectors` takes them."""
        return self.analyzer.tokenize(queries)

    def _check_vectors(self, vectors: Any, n: int) -> list[list[str]]:
        if isinstance(vectors, str) or not isinstance(vectors, Sequence) or len(vectors) != n:
            raise ValueError(f"a BM25 index takes one list of terms per text ({n}), from encode_documents")
        for i, terms in enumerate(vectors):
            if isinstance(terms, str) or not isinstance(terms, Sequence) or not all(isinstance(t, str) for t in terms):
                raise TypeError(f"vectors[{i}] must be a list of term strings (encode_documents gives them)")
        return [list(terms) for terms in vectors]

    def _append_vectors(self, vectors: list[list[str]]) -> None:
        vocabulary = self._vocabulary
        for terms in vectors:
            self._terms.append(np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for t in terms), np.int32))
        self._bm25 = None

    def _delete_vectors(self, rows: np.ndarray) -> None:
        gone = set(rows.tolist())
        self._terms = [t for r, t in enumerate(self._terms) if r not in gone]
        self._bm25 = None

    # ---- search -------------------------------------------------------------------------------

    def _engine(self) -> Any:
        """The ``bm25s.BM25`` of the current documents, built when stale (call under the lock)."""
        if self._bm25 is None:
            bm25 = import_bm25s().BM25(k1=self.k1, b=self.b, delta=self.delta, method=self.method)
            # every term id of the vocabulary is a column, also terms no document holds any more
            # (deleted ones): they have no entries, so they score nothing
            bm25.index(
                (self._terms, dict(self._vocabulary)),
                create_empty_token=False,
                show_progress=self.show_progress_bar,
            )
            self._bm25 = bm25
        return self._bm25

    def term_ids(self, terms: Sequence[str]) -> np.ndarray:
        """The vocabulary ids of ``terms`` (analyzed), leaving out terms no document ever held."""
        return np.array([self._vocabulary[t] for t in terms if t in self._vocabulary], dtype=np.int32)

    def score_rows(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, matched)``: the BM25 score of every document for a query's analyzed ``terms``
        (``bm25s``'s ``get_scores``, row order) and a mask of the documents holding one of them."""
        with self._lock:
            scores = np.zeros(len(self), dtype=np.float32)
            matched = np.zeros(len(self), dtype=bool)
            ids = self.term_ids(terms)
            if not len(self) or not len(ids):
                return scores, matched
            bm25 = self._engine()
            scores = bm25.get_scores_from_ids(ids.tolist())
            indptr, indices = bm25.scores["indptr"], bm25.scores["indices"]
            for term in np.unique(ids):
                matched[indices[indptr[term] : indptr[term + 1]]] = True
            return scores, matched

    def search_by_vectors(
        self, query_vectors: Any, k: int = 10, *, score_threshold: float | None = None
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents holding a query term, best first (ties: the earlier added first),
        for each query's analyzed terms (``encode_queries``)."""
        k = check_positive_int(k, "k")
        if isinstance(query_vectors, str) or not isinstance(query_vectors, Sequence):
            raise TypeError("query_vectors must be one list of terms per query (encode_queries gives them)")
        results = []
        with self._lock:
            for terms in query_vectors:
                scores, matched = self.score_rows(terms)
                rows = np.flatnonzero(matched)
                best = rows[np.argsort(-scores[rows], kind="stable")[:k]]
                results.append(self._hits(best, scores[best], score_threshold))
        return results

    # ---- persistence hooks --------------------------------------------------------------------

    def _model_settings(self) -> dict[str, Any]:
        return {}

    def _manifest(self) -> dict[str, Any]:
        return {
            "analyzer": self.analyzer.as_dict(),
            "bm25": {"k1": self.k1, "b": self.b, "delta": self.delta, "method": self.method},
            "vocabulary_size": len(self._vocabulary),
            "num_terms": int(sum(len(t) for t in self._terms)),
        }

    def _save_vectors(self, folder: Path) -> list[str]:
        offsets = np.zeros(len(self._terms) + 1, dtype=np.int64)
        np.cumsum([len(t) for t in self._terms], out=offsets[1:])
        terms = np.concatenate(self._terms) if self._terms else np.zeros(0, dtype=np.int32)
        np.save(folder / TERMS_FILE, terms.astype(np.int32), allow_pickle=False)
        np.save(folder / OFFSETS_FILE, offsets, allow_pickle=False)
        vocabulary = sorted(self._vocabulary, key=self._vocabulary.__getitem__)
        (folder / VOCABULARY_FILE).write_text(json.dumps(vocabulary, ensure_ascii=False), encoding="utf-8")
        return list(self.vector_files)

    @classmethod
    def _from_manifest(cls, folder: Path, manifest: Manifest, model: Any, options: dict[str, Any]) -> BM25Index:
        return cls(**{**manifest["analyzer"], **manifest["bm25"], **options})

    def _read_vectors(self, folder: Path, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        terms = np.load(folder / TERMS_FILE, allow_pickle=False)
        offsets = np.load(folder / OFFSETS_FILE, allow_pickle=False)
        vocabulary = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
        return terms, offsets, vocabulary

    def _vector_problems(
        self, manifest: dict[str, Any], vectors: tuple[np.ndarray, np.ndarray, list[str]]
    ) -> list[str]:
        terms, offsets, vocabulary = vectors
        n, problems = manifest["num_documents"], []
        if not isinstance(vocabulary, list) or len(vocabulary) != manifest["vocabulary_size"]:
            problems.append(f"{VOCABULARY_FILE} does not hold the {manifest['vocabulary_size']} terms")
        if terms.dtype != np.int32 or terms.shape != (manifest["num_terms"],):
            problems.append(f"{TERMS_FILE} is {terms.dtype} {terms.shape}, expected int32 ({manifest['num_terms']},)")
        elif len(terms) and (terms.min() < 0 or terms.max() >= manifest["vocabulary_size"]):
            problems.append(f"{TERMS_FILE} holds term ids outside the vocabulary")
        if (
            offsets.shape != (n + 1,)
            or (n and (offsets[0] != 0 or offsets[-1] != len(terms)))
            or np.any(np.diff(offsets) < 0)
        ):
            problems.append(f"{OFFSETS_FILE} does not split the terms into {n} documents")
        return problems

    def _restore_vectors(self, vectors: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
        terms, offsets, vocabulary = vectors
        self._vocabulary = {term: i for i, term in enumerate(vocabulary)}
        self._terms = [terms[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        self._bm25 = None

    def __repr__(self) -> str:
        return (
            f"BM25Index(documents={len(self)}, method={self.method!r}, k1={self.k1}, b={self.b}, "
            f"stopwords={self.analyzer.stopwords!r}, stemmer={self.analyzer.stemmer!r})"
        )
