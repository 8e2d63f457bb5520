"""``SparseIndex``: learned sparse retrieval (SPLADE) over an inverted index of the model's term weights.

Documents are stored as one SciPy CSR matrix of term weights, ``(documents, vocab)``, the rows
``SparseModel.encode_documents`` gives. Search multiplies the queries' weights with the inverted
index, the transpose of that matrix as CSR ``(vocab, documents)``: each term's row is its posting
list (the documents holding it, with their weights), so a query touches only the postings of its
own terms. The score is the dot product, the model's own similarity, so a search equals
``Reranker(model).rank`` over the whole corpus. Only documents sharing a term with the query are
returned. The inverted index is rebuilt after adds and deletes, at the next search.

The folder written by :meth:`SparseIndex.save` holds ``manifest.json``, ``documents.jsonl`` and
``weights.npz`` (SciPy's uncompressed ``save_npz`` of the document matrix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..models.base import BaseReranker
from ..models.sparse import SparseModel
from ..options import check_positive_int
from .build_encoding import encode_in_chunks
from .documents import IndexHit
from .file_index import FileIndex, Manifest
from .index_model import load_index_model, warn_on_setting_changes

WEIGHTS_FILE = "weights.npz"
SPARSE_SETTINGS = ("max_length", "max_active_dims", "prompts")


def _csr(vectors: Any, vocab_size: int, what: str) -> Any:
    from scipy import sparse

    if not sparse.issparse(vectors):
        raise TypeError(
            f"{what} must be a SciPy sparse matrix (rows of SparseModel.encode_*), got {type(vectors).__name__}"
        )
    matrix = sparse.csr_matrix(vectors, dtype=np.float32)
    if matrix.shape[1] != vocab_size:
        raise ValueError(f"{what} has {matrix.shape[1]} columns; this index's model has a vocabulary of {vocab_size}")
    if matrix.nnz and not np.all(np.isfinite(matrix.data)):
        raise ValueError(f"{what} holds NaN or infinite weights")
    return matrix


class SparseIndex(FileIndex):
    """Documents searched by a learned sparse model (SPLADE...) through an inverted index of term weights.

    Args:
        model: a ``SparseEncoder`` checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="sparse")``.
        batch_size, show_progress_bar: the encoding's (default: the model's).
        model_kwargs: options for ``Reranker(...)`` when ``model`` is a path.

    Memory: 8 bytes per stored (document, term) weight for the document matrix, the same again for
    the inverted index; SPLADE documents hold about 100-300 terms each, fewer with ``max_active_dims``.

    Example::

        index = SparseIndex("naver/splade-v3")
        index.add(["The giant panda is a bear.", "Paris is in France."], ids=["panda", "paris"])
        index.search("what is a panda?", k=1)     # [IndexHit(id='panda', ..., score=...)]
        index.save("./splade-index"); index = SparseIndex.load("./splade-index")
    """

    described_as: ClassVar[str] = "a sparse index"
    index_format: ClassVar[str] = "rag-retrieval-sparse-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("vocab_size", "nnz", "search")
    vector_files: ClassVar[tuple[str, ...]] = (WEIGHTS_FILE,)
    required_files: ClassVar[tuple[str, ...]] = (WEIGHTS_FILE,)
    build_settings: ClassVar[frozenset[str]] = frozenset()
    search_settings: ClassVar[frozenset[str]] = frozenset({"batch_size", "show_progress_bar"})
    family: ClassVar[type[BaseReranker]] = SparseModel
    model_noun: ClassVar[str] = "sparse model"
    saved_model_options: ClassVar[Mapping[str, str]] = {
        "max_length": "max_length",
        "max_active_dims": "max_active_dims",
    }

    model: SparseModel

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        from scipy import sparse

        super().__init__()
        self.model = load_index_model(model, model_kwargs, SparseModel, self.model_noun)
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.show_progress_bar = show_progress_bar
        self.vocab_size = self.model.vocab_size
        self._weights = sparse.csr_matrix((0, self.vocab_size), dtype=np.float32)
        self._inverted: Any = None  # (vocab, documents) CSR; None: stale

    @property
    def nnz(self) -> int:
        """Stored (document, term) weights."""
        return int(self._weights.nnz)

    def weights(self, doc_id: str) -> Any:
        """The stored term weights of a document: a ``(1, vocab_size)`` CSR matrix (``model.decode`` reads it)."""
        with self._lock:
            row = self._row_of(doc_id)
            return self._weights[row : row + 1].copy()

    # ---- encoding and storing -------------------------------------------------------------

    def encode_documents(self, texts: Sequence[str]) -> Any:
        """Term weights of ``texts`` (a CSR matrix, one row each), as :meth:`add_vectors` takes them."""
        from scipy import sparse

        chunks = encode_in_chunks(
            self.model,
            list(texts),
            lambda chunk: self.model.encode_documents(chunk, batch_size=self.batch_size),
            show_progress_bar=self.show_progress_bar,
            batch_size=self.batch_size,
            desc="Indexing",
        )
        return sparse.vstack(chunks, format="csr") if chunks else self.model.encode_documents([])

    def encode_queries(self, queries: Sequence[str]) -> Any:
        """Term weights of ``queries``, a CSR matrix ``(queries, vocab_size)``."""
        return self.model.encode_queries(queries, batch_size=self.batch_size)

    def _check_vectors(self, vectors: Any, n: int) -> Any:
        matrix = _csr(vectors, self.vocab_size, "vectors")
        if matrix.shape[0] != n:
            raise ValueError(f"vectors has {matrix.shape[0]} rows for {n} texts; give one per text")
        return matrix

    def _append_vectors(self, vectors: Any) -> None:
        from scipy import sparse

        self._weights = sparse.vstack([self._weights, vectors], format="csr")
        self._inverted = None

    def _delete_vectors(self, rows: np.ndarray) -> None:
        keep = np.ones(self._weights.shape[0], dtype=bool)
        keep[rows] = False
        self._weights = self._weights[keep]
        self._inverted = None

    # ---- search -------------------------------------------------------------------------------

    def search_by_vectors(
        self, query_vectors: Any, k: int = 10, *, score_threshold: float | None = None
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents sharing a term with each query, by dot product, best first (ties:
        the earlier added first), for the queries' term weights (:meth:`encode_queries`)."""
        k = check_positive_int(k, "k")
        queries = _csr(query_vectors, self.vocab_size, "query_vectors")
        with self._lock:
            if self._inverted is None:
                self._inverted = self._weights.T.tocsr()  # rows: terms, each its posting list
            scores = (queries @ self._inverted).tocsr()
            results = []
            for q in range(queries.shape[0]):
                start, end = scores.indptr[q], scores.indptr[q + 1]
                rows, values = scores.indices[start:end], scores.data[start:end]
                order = np.lexsort((rows, -values))[:k]  # best first, then the earlier document
                results.append(self._hits(rows[order], values[order], score_threshold))
        return results

    # ---- persistence hooks --------------------------------------------------------------------

    def _model_settings(self) -> dict[str, Any]:
        return {
            "max_length": self.model.max_length,
            "max_active_dims": self.model.max_active_dims,
            "prompts": dict(self.model.model.prompts),
            "vocab_size": self.vocab_size,
        }

    def _manifest(self) -> dict[str, Any]:
        return {
            "vocab_size": self.vocab_size,
            "nnz": self.nnz,
            "search": {"batch_size": self.batch_size, "show_progress_bar": self.show_progress_bar},
        }

    def _save_vectors(self, folder: Path) -> list[str]:
        from scipy import sparse

        sparse.save_npz(folder / WEIGHTS_FILE, self._weights.tocsr(), compressed=False)
        return [WEIGHTS_FILE]

    @classmethod
    def _from_manifest(cls, folder: Path, manifest: Manifest, model: Any, options: dict[str, Any]) -> SparseIndex:
        if model is None:
            raise ValueError(f"a sparse index needs its model; the manifest at {str(folder)!r} records none")
        index = cls(model, **{**manifest["search"], **options})
        if index.vocab_size != manifest["vocab_size"]:
            raise ValueError(
                f"the model's vocabulary has {index.vocab_size} terms but the index at {str(folder)!r} holds "
                f"{manifest['vocab_size']}-term weights (built with {manifest['model'].get('model')!r}); load it "
                "with that model"
            )
        warn_on_setting_changes(index._model_settings(), manifest["model"], folder, SPARSE_SETTINGS)
        return index

    def _read_vectors(self, folder: Path, manifest: dict[str, Any]) -> Any:
        from scipy import sparse

        return sparse.load_npz(folder / WEIGHTS_FILE).tocsr()

    def _vector_problems(self, manifest: dict[str, Any], vectors: Any) -> list[str]:
        n, vocab = manifest["num_documents"], manifest["vocab_size"]
        if vectors.shape != (n, vocab) or vectors.nnz != manifest["nnz"]:
            return [f"{WEIGHTS_FILE} is {vectors.shape} with {vectors.nnz} weights, expected ({n}, {vocab}) with "
                    f"{manifest['nnz']}"]  # fmt: skip
        return []

    def _restore_vectors(self, vectors: Any) -> None:
        self._weights = vectors.astype(np.float32)
        self._inverted = None

    def __repr__(self) -> str:
        return f"SparseIndex(model={self.model.model_name_or_path!r}, documents={len(self)}, weights={self.nnz})"
