"""A persistent ColBERT index: FAISS finds candidates among the token vectors, MaxSim ranks them.

Search runs in two stages, as ColBERT's end-to-end retrieval does:

1. **Candidates.** Every query token vector is searched in a FAISS IVF index over all document
   token vectors (the ``nprobe`` k-means clusters nearest to it, ``token_k`` nearest tokens), and
   each document met gets an estimate of its MaxSim: per query token, the best similarity found
   among its tokens, or, if none was found, the ``token_k``-th similarity found (an unseen token
   of it is unlikely to do better). The ``max_candidates`` documents with the highest estimate
   go on.
2. **Exact MaxSim** of the query against the candidates' stored token vectors
   (:func:`~rag_retrieval_integrations.core.models.maxsim.maxsim_packed`: the score ``Reranker`` gives,
   on the float16-stored vectors, within about 1e-3).

A small index needs no stage 1: one matrix product over all its token vectors scores every
document exactly, as fast as a FAISS scan of them. So with ``faiss_index="auto"`` (the default)
searches are exhaustive and exact until the index holds ``IVF_FROM_TOKENS`` (100,000) token
vectors; then the IVF index is trained on the vectors stored by then and used from there on.
``"ivf"`` builds it as soon as k-means has enough vectors (39 per cluster), ``"none"`` never does.
``search(..., exhaustive=True)`` always scores every document exactly.

**Storage**: ``3 * dim + 8`` bytes per token (float16 vectors for exact scoring, FAISS's 8-bit
code and id once the IVF index exists), 392 B at ``dim`` 128: see docs/colbert.md.

The folder written by :meth:`ColBERTIndex.save` (the template of :class:`~.file_index.FileIndex`) holds ``manifest.json`` (format, model settings,
counts, and the size and SHA-256 of every other file), ``token_vectors.npy`` (float16,
``(tokens, dim)``), ``doc_offsets.npy`` (int64, first token of each document, then the total),
``documents.jsonl`` (id, text, metadata per document, in order) and, once built, ``faiss.index``.
:meth:`ColBERTIndex.load` checks all of it and names what is missing or corrupted.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import numpy as np

from ..models.colbert import ColBERTReranker
from ..models.maxsim import maxsim_packed
from ..options import check_positive_int
from .colbert_encoding import COLBERT_MODEL_OPTIONS, ColBERTEncoding
from .colbert_search import best_k, candidate_slots
from .documents import IndexHit
from .faiss_ops import MIN_POINTS_PER_CENTROID, add_with_ids, import_faiss, ivf_sq8
from .file_index import FileIndex, Manifest
from .folder import MANIFEST_FILE, CorruptIndexError
from .index_model import load_index_model, warn_on_setting_changes

FaissKind = Literal["auto", "ivf", "none"]
FAISS_KINDS: tuple[str, ...] = ("auto", "ivf", "none")

VECTORS_FILE = "token_vectors.npy"
OFFSETS_FILE = "doc_offsets.npy"
FAISS_FILE = "faiss.index"

COLBERT_SETTINGS = ("query_length", "query_expansion", "document_length", "query_mean", "prompts")
"""The model settings that change a ColBERT model's vectors: a difference from the index's is warned of."""

IVF_FROM_TOKENS = 100_000
"""``faiss_index="auto"`` builds the IVF index once the index holds this many token vectors."""

ModelLike = Union[ColBERTReranker, str, "os.PathLike[str]"]


class ColBERTIndex(ColBERTEncoding, FileIndex):
    """Documents' ColBERT token vectors, searchable by MaxSim, saved to and loaded from a folder.

    Args:
        model: a ColBERT checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="colbert")``.
        faiss_index: ``"auto"``, ``"ivf"`` or ``"none"``: when to build the FAISS IVF index of
            candidates (see the module docstring); until then searches are exhaustive and exact.
        nlist: IVF clusters; default ``sqrt(tokens)`` when the IVF index is built, at least 16.
        nprobe: IVF clusters searched per query token.
        token_k: nearest document tokens fetched per query token.
        max_candidates: documents scored exactly per query.
        batch_size: texts per forward pass when encoding (default: the model's).
        show_progress_bar: progress bar while indexing (default: the model's setting).
        model_kwargs: options for ``Reranker(...)`` when ``model`` is a path.

    Example::

        index = ColBERTIndex("./my-colbert")
        ids = index.add(["The giant panda is a bear.", "Paris is in France."], metadatas=[{"src": "a"}, {"src": "b"}])
        index.search("what is a panda?", k=1)     # [IndexHit(id=..., text='The giant panda ...', score=...)]
        index.save("./panda-index")
        index = ColBERTIndex.load("./panda-index")  # the model is loaded from the manifest
    """

    described_as: ClassVar[str] = "a ColBERT index"
    index_format: ClassVar[str] = "rag-retrieval-colbert-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("dim", "num_tokens", "faiss")
    vector_files: ClassVar[tuple[str, ...]] = (VECTORS_FILE, OFFSETS_FILE, FAISS_FILE)
    required_files: ClassVar[tuple[str, ...]] = (VECTORS_FILE, OFFSETS_FILE)
    build_settings: ClassVar[frozenset[str]] = frozenset({"faiss_index", "nlist"})
    search_settings: ClassVar[frozenset[str]] = frozenset(
        {"nprobe", "token_k", "max_candidates", "batch_size", "show_progress_bar"}
    )
    family: ClassVar[type[ColBERTReranker]] = ColBERTReranker
    model_noun: ClassVar[str] = "ColBERT model"
    saved_model_options: ClassVar[Mapping[str, str]] = COLBERT_MODEL_OPTIONS

    model: ColBERTReranker

    def __init__(
        self,
        model: ModelLike,
        *,
        faiss_index: FaissKind = "auto",
        nlist: int | None = None,
        nprobe: int = 16,
        token_k: int = 128,
        max_candidates: int = 256,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if faiss_index not in FAISS_KINDS:
            raise ValueError(f"faiss_index must be 'auto', 'ivf' or 'none', got {faiss_index!r}")
        if nlist is not None:
            check_positive_int(nlist, "nlist")
        super().__init__()
        self.model = load_index_model(model, model_kwargs, self.family, self.model_noun)
        self.faiss_index: FaissKind = faiss_index
        self.nlist = nlist
        self.nprobe = check_positive_int(nprobe, "nprobe")
        self.token_k = check_positive_int(token_k, "token_k")
        self.max_candidates = check_positive_int(max_candidates, "max_candidates")
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.show_progress_bar = show_progress_bar
        self.dim = self.model.embedding_dim
        self._faiss: Any = None
        # Token rows of every document added since the last compaction ("slots", deleted ones too):
        # FAISS ids are token rows, so a delete only marks its slots dead until the rows are compacted.
        self._vectors = np.zeros((0, self.dim), dtype=np.float16)
        self._token_slot = np.zeros(0, dtype=np.int64)
        self._slot_start: list[int] = []
        self._slot_len: list[int] = []
        self._alive: list[bool] = []
        self._reindex()

    def _reindex(self) -> None:
        """The slot of each document row and the row of each slot (``-1``: deleted): live slots in order are the rows."""
        alive = np.asarray(self._alive, dtype=bool)
        self._row_slot = np.flatnonzero(alive)
        self._slot_row = np.where(alive, np.cumsum(alive) - 1, -1)

    # ---- contents -------------------------------------------------------------------------

    @property
    def num_tokens(self) -> int:
        """Token vectors stored for the documents in the index."""
        with self._lock:
            return int(np.asarray(self._slot_len, dtype=np.int64)[self._row_slot].sum())

    @property
    def uses_faiss(self) -> bool:
        """Whether searches take their candidates from the FAISS IVF index (else they are exhaustive)."""
        return self._faiss is not None

    def token_vectors(self, doc_id: str) -> np.ndarray:
        """The stored float16 ``(tokens, dim)`` token vectors of a document (a copy)."""
        with self._lock:
            slot = self._row_slot[self._row_of(doc_id)]
            start = self._slot_start[slot]
            return self._vectors[start : start + self._slot_len[slot]].copy()

    # ---- encoding and storing -------------------------------------------------------------

    def _append_vectors(self, vectors: list[np.ndarray]) -> None:
        self._append_slots(vectors)
        if self._faiss is None and self._wants_ivf():
            self._build_ivf()

    def _append_slots(self, vectors: list[np.ndarray]) -> None:
        if not vectors:
            self._reindex()
            return
        first_row, first_slot = len(self._vectors), len(self._slot_start)
        lengths = [len(v) for v in vectors]
        new_vectors = np.concatenate(vectors)
        if new_vectors.shape[1:] != (self.dim,):
            raise ValueError(f"the model gives {new_vectors.shape[1]}-dim token vectors; this index holds {self.dim}")
        if self._faiss is not None:
            add_with_ids(self._faiss, new_vectors, first_row)
        self._vectors = np.concatenate([self._vectors, new_vectors]) if len(self._vectors) else new_vectors
        slots = np.arange(first_slot, first_slot + len(vectors))
        self._token_slot = np.concatenate([self._token_slot, np.repeat(slots, lengths)])
        starts = first_row + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self._slot_start.extend(int(s) for s in starts)
        self._slot_len.extend(lengths)
        self._alive.extend([True] * len(vectors))
        self._reindex()

    def _delete_vectors(self, rows: np.ndarray) -> None:
        slots = self._row_slot[rows]
        if self._faiss is not None:
            tokens = [np.arange(self._slot_start[s], self._slot_start[s] + self._slot_len[s]) for s in slots]
            self._faiss.remove_ids(import_faiss().IDSelectorBatch(np.concatenate(tokens).astype(np.int64)))
        for s in slots:
            self._alive[s] = False
        self._reindex()
        if len(self._vectors) > 2 * self.num_tokens:  # mostly dead rows: reclaim the memory
            self._compact()

    def _compact(self) -> None:
        """Drop deleted documents' rows; FAISS gets the remaining vectors again under their new row ids."""
        vectors = [self._vectors[self._slot_start[s] : self._slot_start[s] + self._slot_len[s]] for s in self._row_slot]
        self._vectors = np.zeros((0, self.dim), dtype=np.float16)
        self._token_slot = np.zeros(0, dtype=np.int64)
        self._slot_start, self._slot_len, self._alive = [], [], []
        if self._faiss is not None:
            self._faiss.reset()  # keeps what was trained: the IVF centroids and the quantizer ranges
        self._append_slots(vectors)

    def _wants_ivf(self) -> bool:
        if self.faiss_index == "none":
            return False
        if self.faiss_index == "auto":
            return self.num_tokens >= IVF_FROM_TOKENS
        return self.num_tokens >= MIN_POINTS_PER_CENTROID * (self.nlist or 16)

    def _build_ivf(self) -> None:
        """Train the IVF index (k-means centroids, 8-bit quantizer) on the stored vectors and add them all."""
        if len(self._vectors) != self.num_tokens:
            self._compact()
        self.nlist = self.nlist or max(16, int(math.sqrt(len(self._vectors))))
        self._faiss = ivf_sq8(self._vectors, self.nlist, self.nprobe)
        add_with_ids(self._faiss, self._vectors, 0)

    # ---- search ---------------------------------------------------------------------------

    def search_by_vectors(
        self,
        query_vectors: Sequence[np.ndarray],
        k: int = 10,
        *,
        exhaustive: bool = False,
        score_threshold: float | None = None,
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents by exact MaxSim for each query encoded by :meth:`encode_queries`
        (one ``(tokens, dim)`` array each), best first.

        Args:
            query_vectors: the queries' token vectors.
            k: how many documents to return per query.
            exhaustive: score every document instead of FAISS's candidates.
            score_threshold: drop documents scoring below this (a document scoring exactly it is kept).
        """
        k = check_positive_int(k, "k")
        for i, q in enumerate(query_vectors):
            if np.ndim(q) != 2 or np.shape(q)[1] != self.dim:
                raise ValueError(f"query_vectors[{i}] must be a (tokens, {self.dim}) array, got shape {np.shape(q)}")
        query_vectors = [np.asarray(q, dtype=np.float32) for q in query_vectors]
        with self._lock:
            if not len(self):
                return [[] for _ in query_vectors]
            if exhaustive or self._faiss is None:
                ranked = self._exhaustive(query_vectors, k)
            else:
                ranked = [self._search_candidates(q, k) for q in query_vectors]
            return [self._hits(rows, scores, score_threshold) for rows, scores in ranked]

    def _packed(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The token vectors of ``slots`` as one packed matrix, and each document's first row in it."""
        starts = np.asarray(self._slot_start, dtype=np.int64)[slots]
        lengths = np.asarray(self._slot_len, dtype=np.int64)[slots]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return self._vectors[rows], offsets

    def _exhaustive(self, query_vectors: list[np.ndarray], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        # Every stored row in place (deleted documents' rows too, until compaction), then the live slots.
        offsets = np.asarray(self._slot_start + [len(self._vectors)], dtype=np.int64)
        scores = maxsim_packed(query_vectors, self._vectors, offsets, query_mean=self.model.query_mean)
        rows = np.arange(len(self))
        return [best_k(rows, row[self._row_slot], k) for row in scores]

    def _search_candidates(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._faiss.nprobe = min(self.nprobe, self._faiss.nlist)
        sims, rows = self._faiss.search(np.ascontiguousarray(query, dtype=np.float32), self.token_k)
        candidates = candidate_slots(sims, rows, self._token_slot, self.max_candidates)
        if not len(candidates):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        tokens, offsets = self._packed(candidates)
        scores = maxsim_packed([query], tokens, offsets, query_mean=self.model.query_mean)[0]
        return best_k(self._slot_row[candidates], scores, k)

    # ---- persistence hooks ----------------------------------------------------------------

    def _model_settings(self) -> dict[str, Any]:
        return self.model.settings()

    def _manifest(self) -> dict[str, Any]:
        return {
            "num_tokens": len(self._vectors),
            "dim": self.dim,
            "vector_dtype": "float16",
            "faiss": {
                "mode": self.faiss_index,
                "built": self._faiss is not None,
                "kind": "IVF-SQ8",
                "nlist": self.nlist,
            },
            "search": {"nprobe": self.nprobe, "token_k": self.token_k, "max_candidates": self.max_candidates},
        }

    def _save_vectors(self, folder: Path) -> list[str]:
        if len(self._vectors) != self.num_tokens:
            self._compact()
        np.save(folder / VECTORS_FILE, self._vectors, allow_pickle=False)
        offsets = np.asarray(self._slot_start + [len(self._vectors)], dtype=np.int64)
        np.save(folder / OFFSETS_FILE, offsets, allow_pickle=False)
        if self._faiss is None:
            return [VECTORS_FILE, OFFSETS_FILE]
        import_faiss().write_index(self._faiss, str(folder / FAISS_FILE))
        return [VECTORS_FILE, OFFSETS_FILE, FAISS_FILE]

    @classmethod
    def _check_manifest(cls, folder: Path, manifest: dict[str, Any]) -> None:
        if manifest["faiss"].get("mode") not in FAISS_KINDS:
            raise CorruptIndexError(f"{folder / MANIFEST_FILE}: faiss.mode must be 'auto', 'ivf' or 'none'")

    @classmethod
    def _from_manifest(cls, folder: Path, manifest: Manifest, model: Any, options: dict[str, Any]) -> ColBERTIndex:
        faiss = manifest["faiss"]
        search = {**manifest.get("search", {}), **options}
        index = cls(model, faiss_index=faiss["mode"], nlist=faiss.get("nlist"), **search)
        if index.dim != manifest["dim"]:
            raise ValueError(
                f"the model gives {index.dim}-dim token vectors but the index at {str(folder)!r} holds "
                f"{manifest['dim']}-dim ones (built with {manifest['model'].get('model')!r}); load it with that model"
            )
        warn_on_setting_changes(index.model.settings(), manifest["model"], folder, COLBERT_SETTINGS)
        return index

    def _read_vectors(self, folder: Path, manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, Any]:
        vectors = np.load(folder / VECTORS_FILE, mmap_mode="c", allow_pickle=False)  # copy-on-write: disk never changes
        offsets = np.load(folder / OFFSETS_FILE, allow_pickle=False)
        faiss_index = import_faiss().read_index(str(folder / FAISS_FILE)) if (folder / FAISS_FILE).is_file() else None
        return vectors, offsets, faiss_index

    def _vector_problems(self, manifest: dict[str, Any], vectors: tuple[np.ndarray, np.ndarray, Any]) -> list[str]:
        tokens, offsets, faiss_index = vectors
        n_docs, n_tokens, dim = manifest["num_documents"], manifest["num_tokens"], manifest["dim"]
        problems = []
        if tokens.dtype != np.float16 or tokens.shape != (n_tokens, dim):
            problems.append(f"{VECTORS_FILE} is {tokens.dtype} {tokens.shape}, expected float16 ({n_tokens}, {dim})")
        if offsets.shape != (n_docs + 1,) or offsets[0] != 0 or offsets[-1] != n_tokens or np.any(np.diff(offsets) < 0):
            problems.append(f"{OFFSETS_FILE} does not hold {n_docs + 1} increasing offsets from 0 to {n_tokens}")
        if manifest["faiss"].get("built") and faiss_index is None:
            problems.append(f"{FAISS_FILE} is missing, but the manifest says it was built")
        elif faiss_index is not None and (faiss_index.ntotal != n_tokens or faiss_index.d != dim):
            problems.append(f"{FAISS_FILE} does not index the {n_tokens} {dim}-dim token vectors")
        return problems

    def _restore_vectors(self, vectors: tuple[np.ndarray, np.ndarray, Any]) -> None:
        self._vectors, offsets, self._faiss = vectors
        self._slot_start = [int(s) for s in offsets[:-1]]
        self._slot_len = [int(n) for n in np.diff(offsets)]
        self._alive = [True] * len(self._slot_start)
        self._token_slot = np.repeat(np.arange(len(self._slot_start)), self._slot_len)
        self._reindex()

    def __repr__(self) -> str:
        return (
            f"ColBERTIndex(model={self.model.model_name_or_path!r}, documents={len(self)}, "
            f"tokens={self.num_tokens}, faiss_index={self.faiss_index!r}, ivf_built={self.uses_faiss})"
        )
