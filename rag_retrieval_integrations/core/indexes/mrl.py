"""``MRLIndex``: Matryoshka (MRL) coarse-to-fine search, FAISS over the first dims, full vectors re-score.

A model trained with the Matryoshka loss packs most of what its vectors say into their first
dimensions, so search runs as a funnel:

1. **Shortlist.** A FAISS index (``"flat"``, ``"hnsw"`` or ``"ivf"``) over the prefixes
   ``p = v[:search_dim] / ||v[:search_dim]||`` returns the ``max(k * shortlist_factor, shortlist_size)``
   nearest documents (all of them, if fewer).
2. **Re-score.** Those are scored by the full vectors with the model's similarity (cosine: the
   score ``Reranker(...).rank`` gives), in one FAISS call for a batch of queries; the best ``k`` return.

A shortlist covering every document (or ``search_dim = dim`` with a flat index) is exhaustive search.
``search_dim`` defaults to the smallest Matryoshka dim the checkpoint was trained with.
Measurements of speed and agreement with exhaustive search: ``benchmarks/results/mrl_funnel_speed.md``.

The folder written by :meth:`MRLIndex.save` holds ``manifest.json``, ``vectors.npy`` (the full
vectors, ``(documents, dim)``), ``documents.jsonl`` and ``faiss.index`` (row ``i`` = document ``i``).
The same two stages over any vector store: :mod:`.funnel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from ..models.embedding import EmbeddingModel
from ..options import check_positive_int
from .documents import IndexHit
from .faiss_ops import import_faiss, search_params, serialized_bytes, shortlist_index
from .file_index import FileIndex, Manifest
from .mrl_encoder import MRL_MODEL_OPTIONS, ModelLike, MRLEncoding, check_model_fits, mrl_settings
from .mrl_vectors import (
    DEFAULT_SHORTLIST_FACTOR,
    VECTOR_DTYPES,
    Similarity,
    VectorDtype,
    check_shortlist_size,
    full_vectors,
    prefix_vectors,
    rescore_shortlist,
    shortlist_width,
)

IndexType = Literal["flat", "hnsw", "ivf"]
INDEX_TYPES: tuple[str, ...] = ("flat", "hnsw", "ivf")
VECTORS_FILE = "vectors.npy"
FAISS_FILE = "faiss.index"


class MRLIndex(MRLEncoding, FileIndex):
    """Full document vectors plus a FAISS index over their first ``search_dim`` dims; searched coarse to fine.

    Args:
        model: an embedding checkpoint (path or hub id) or a loaded ``Reranker(..., model_type="embedding")``,
            to encode texts; ``None`` for an index of vectors given to :meth:`add_vectors` and
            searched with :meth:`search_by_vectors` or :meth:`search_rows`.
        dim: the full vectors' dimension; taken from the model (and checked against it) when there is one.
        search_dim: dims of the shortlist stage; default: the smallest Matryoshka dim the checkpoint
            was trained with; without a model (or such dims), ``dim`` (exhaustive).
        similarity: ``"cosine"`` or ``"dot"``; taken from the model when there is one.
        shortlist_factor: candidates re-scored per result; see :data:`DEFAULT_SHORTLIST_FACTOR`.
        shortlist_size: the fewest candidates re-scored per query, whatever ``k``: the shortlist is
            ``max(k * shortlist_factor, shortlist_size)`` documents (all of them, if fewer).
            ``None`` (default): ``k * shortlist_factor`` alone. A large index needs it: the
            shortlist a given agreement with exhaustive search needs grows with the index.
        index_type: ``"flat"`` (exact shortlist), ``"hnsw"`` (graph, approximate) or ``"ivf"``
            (clusters, approximate; trained on the first documents added).
        vector_dtype: ``"float32"`` or ``"float16"`` (half the memory; scores within about 1e-3).
        hnsw_m, hnsw_ef_construction, hnsw_ef_search: HNSW graph degree and search breadths
            (``ef_search`` is raised to the shortlist size when smaller).
        nlist: IVF clusters; default ``4 * sqrt(n)`` of the first documents added (at most ``n / 39``).
        nprobe: IVF clusters searched per query.
        batch_size, show_progress_bar, model_kwargs: see :class:`MRLEncoder`.

    Memory per document: ``dim * 4`` bytes (``* 2`` in float16) for the full vectors, plus FAISS's
    ``search_dim * 4`` (and HNSW's links, about ``hnsw_m * 8``). ``load(..., mmap=True)`` leaves
    the full vectors on disk: a search then reads only its candidates' rows.

    Example::

        index = MRLIndex("./minilm-mrl")                      # search_dim from the checkpoint, e.g. 64
        index.add(["The giant panda is a bear.", "Paris is in France."], metadatas=[{"src": "a"}, {"src": "b"}])
        index.search("what is a panda?", k=1)                 # [IndexHit(id=..., text='The giant panda ...', score=...)]
        index.save("./panda-index")
        index = MRLIndex.load("./panda-index", mmap=True)     # model from the manifest, full vectors left on disk
    """

    described_as: ClassVar[str] = "an MRL index"
    index_format: ClassVar[str] = "rag-retrieval-mrl-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("dim", "search_dim", "similarity", "vector_dtype", "faiss", "search")
    vector_files: ClassVar[tuple[str, ...]] = (VECTORS_FILE, FAISS_FILE)
    required_files: ClassVar[tuple[str, ...]] = (VECTORS_FILE,)
    build_settings: ClassVar[frozenset[str]] = frozenset(
        {"search_dim", "index_type", "vector_dtype", "hnsw_m", "hnsw_ef_construction", "nlist"}
    )
    search_settings: ClassVar[frozenset[str]] = frozenset(
        {"shortlist_factor", "shortlist_size", "hnsw_ef_search", "nprobe", "batch_size", "show_progress_bar"}
    )
    read_options: ClassVar[frozenset[str]] = frozenset({"mmap"})
    family: ClassVar[type[EmbeddingModel]] = EmbeddingModel
    model_noun: ClassVar[str] = "embedding model"
    saved_model_options: ClassVar[Mapping[str, str]] = MRL_MODEL_OPTIONS

    def __init__(
        self,
        model: ModelLike | None = None,
        *,
        dim: int | None = None,
        search_dim: int | None = None,
        similarity: Similarity | None = None,
        shortlist_factor: int = DEFAULT_SHORTLIST_FACTOR,
        shortlist_size: int | None = None,
        index_type: IndexType = "flat",
        vector_dtype: VectorDtype = "float32",
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 80,
        hnsw_ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
        batch_size: int | None = None,
        show_progress_bar: bool | None = None,
        model_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {list(INDEX_TYPES)}, got {index_type!r}")
        if vector_dtype not in VECTOR_DTYPES:
            raise ValueError(f"vector_dtype must be one of {list(VECTOR_DTYPES)}, got {vector_dtype!r}")
        super().__init__()
        self.encoder, self.dim, self.search_dim, self.similarity = mrl_settings(
            model,
            dim=dim,
            search_dim=search_dim,
            similarity=similarity,
            batch_size=batch_size,
            show_progress_bar=show_progress_bar,
            model_kwargs=model_kwargs,
            index_name="MRLIndex",
        )
        self.shortlist_factor = check_positive_int(shortlist_factor, "shortlist_factor")
        self.shortlist_size = check_shortlist_size(shortlist_size)
        self.index_type: IndexType = index_type
        self.vector_dtype: VectorDtype = vector_dtype
        self.hnsw_m = check_positive_int(hnsw_m, "hnsw_m")
        self.hnsw_ef_construction = check_positive_int(hnsw_ef_construction, "hnsw_ef_construction")
        self.hnsw_ef_search = check_positive_int(hnsw_ef_search, "hnsw_ef_search")
        self.nlist = None if nlist is None else check_positive_int(nlist, "nlist")
        self.nprobe = check_positive_int(nprobe, "nprobe")
        self._vectors = np.zeros((0, self.dim), dtype=vector_dtype)  # capacity rows; the first len(self) are used
        self._faiss: Any = None

    @property
    def nbytes(self) -> dict[str, int]:
        """Bytes held per part: ``"vectors"`` (the full vectors) and ``"faiss"`` (the shortlist index)."""
        with self._lock:
            faiss_bytes = 0 if self._faiss is None else serialized_bytes(self._faiss)
            return {"vectors": int(len(self) * self.dim * np.dtype(self.vector_dtype).itemsize), "faiss": faiss_bytes}

    def vector(self, doc_id: str) -> np.ndarray:
        """The stored full vector of a document (float32, a copy)."""
        with self._lock:
            return self._vectors[self._row_of(doc_id)].astype(np.float32)

    # ---- encoding and storing -----------------------------------------------------------------

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        embeddings: Any = None,
    ) -> list[str]:
        """:meth:`Index.add`; ``embeddings``, the documents' full vectors ``(len(texts), dim)``, stand
        for encoding ``texts`` (as :meth:`add_vectors`; normalized here for cosine)."""
        if embeddings is None:
            return super().add(texts, ids=ids, metadatas=metadatas)
        return self.add_vectors(texts, embeddings, ids=ids, metadatas=metadatas)

    def _append_vectors(self, vectors: np.ndarray) -> None:
        stored = vectors.astype(self.vector_dtype)
        prefixes = prefix_vectors(stored, self.search_dim, self.similarity)
        if self._faiss is None:
            self._faiss, self.nlist = shortlist_index(
                self.index_type,
                prefixes,
                hnsw_m=self.hnsw_m,
                hnsw_ef_construction=self.hnsw_ef_construction,
                nlist=self.nlist,
            )
        self._faiss.add(prefixes)
        count, needed = len(self), len(self) + len(stored)
        if needed > len(self._vectors) or not self._vectors.flags.writeable:  # grow (or leave a memory map)
            grown = np.empty((max(needed, 2 * count, 1024), self.dim), dtype=self.vector_dtype)
            grown[:count] = self._vectors[:count]
            self._vectors = grown
        self._vectors[count:needed] = stored

    def _delete_vectors(self, rows: np.ndarray) -> None:
        """Keep the other rows; the shortlist index is rebuilt from them: cheap for ``"flat"`` and
        ``"ivf"`` (the clusters are kept), a new graph for ``"hnsw"``: delete in batches."""
        keep = np.ones(len(self), dtype=bool)
        keep[rows] = False
        self._vectors = np.ascontiguousarray(self._vectors[: len(self)][keep])
        self._faiss.reset()  # keeps what was trained (IVF centroids)
        if len(self._vectors):
            self._faiss.add(prefix_vectors(self._vectors, self.search_dim, self.similarity))

    # ---- search -------------------------------------------------------------------------------

    def search_by_vectors(
        self,
        query_vectors: Any,
        k: int = 10,
        *,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
        score_threshold: float | None = None,
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents by full-vector similarity among the shortlist, best first, for each
        full query vector (``(queries, dim)``, e.g. from :meth:`encode_queries`).

        Args:
            query_vectors: the queries' full vectors.
            k: how many documents to return per query (fewer if the index is smaller).
            shortlist_factor: candidates per result for this call (default: the index's).
            shortlist_size: the fewest candidates for this call (default: the index's).
            score_threshold: drop documents scoring below this (a document scoring exactly it is kept).
        """
        with self._lock:
            scores, rows = self.search_rows(
                query_vectors, k, shortlist_factor=shortlist_factor, shortlist_size=shortlist_size
            )
            return [self._hits(r, s, score_threshold) for s, r in zip(scores, rows)]

    def search_rows(
        self,
        query_vectors: Any,
        k: int = 10,
        *,
        shortlist_factor: int | None = None,
        shortlist_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search_by_vectors` as arrays, as FAISS's ``search`` returns them: ``(scores, rows)``,
        each ``(queries, k)``, best first (no ``IndexHit`` objects: for bulk searches and benchmarks).

        ``rows`` index :attr:`ids` (valid until the next add or delete); ``-1`` (score ``-inf``)
        pads the results of an index holding fewer than ``k`` documents.
        """
        k = check_positive_int(k, "k")
        factor = (
            self.shortlist_factor
            if shortlist_factor is None
            else check_positive_int(shortlist_factor, "shortlist_factor")
        )
        floor = self.shortlist_size if shortlist_size is None else check_shortlist_size(shortlist_size)
        queries = full_vectors(query_vectors, self.dim, self.similarity, "query_vectors")
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        rows = np.full((len(queries), k), -1, dtype=np.int64)
        with self._lock:
            if not len(self) or not len(queries):
                return scores, rows
            width = shortlist_width(k, factor, floor, len(self))
            params = search_params(
                self.index_type, self._faiss, width, hnsw_ef_search=self.hnsw_ef_search, nprobe=self.nprobe
            )
            _, shortlist = self._faiss.search(
                prefix_vectors(queries, self.search_dim, self.similarity), width, params=params
            )
            rescore_shortlist(self._vectors[: len(self)], queries, shortlist, scores, rows)
        scores[rows < 0] = -np.inf
        rows[~np.isfinite(scores)] = -1
        return scores, rows

    # ---- persistence hooks --------------------------------------------------------------------

    def _manifest(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "search_dim": self.search_dim,
            "similarity": self.similarity,
            "vector_dtype": self.vector_dtype,
            "faiss": {
                "index_type": self.index_type,
                "hnsw_m": self.hnsw_m,
                "hnsw_ef_construction": self.hnsw_ef_construction,
                "nlist": self.nlist,
            },
            "search": {
                "shortlist_factor": self.shortlist_factor,
                "shortlist_size": self.shortlist_size,
                "hnsw_ef_search": self.hnsw_ef_search,
                "nprobe": self.nprobe,
            },
        }

    def _save_vectors(self, folder: Path) -> list[str]:
        np.save(folder / VECTORS_FILE, self._vectors[: len(self)], allow_pickle=False)
        if self._faiss is None:
            return [VECTORS_FILE]
        import_faiss().write_index(self._faiss, str(folder / FAISS_FILE))
        return [VECTORS_FILE, FAISS_FILE]

    @classmethod
    def _from_manifest(cls, folder: Path, manifest: Manifest, model: Any, options: dict[str, Any]) -> MRLIndex:
        faiss = manifest["faiss"]
        common = {
            "search_dim": manifest["search_dim"],
            "vector_dtype": manifest["vector_dtype"],
            "index_type": faiss["index_type"],
            "hnsw_m": faiss["hnsw_m"],
            "hnsw_ef_construction": faiss["hnsw_ef_construction"],
            "nlist": faiss["nlist"],
            **manifest["search"],
            **options,
        }
        if model is None:
            return cls(None, dim=manifest["dim"], similarity=manifest["similarity"], **common)
        check_model_fits(model, manifest, folder)
        return cls(model, **common)

    def _read_vectors(self, folder: Path, manifest: dict[str, Any], mmap: bool = False) -> tuple[np.ndarray, Any]:
        vectors = np.load(folder / VECTORS_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
        faiss_index = import_faiss().read_index(str(folder / FAISS_FILE)) if FAISS_FILE in manifest["files"] else None
        return vectors, faiss_index

    def _vector_problems(self, manifest: dict[str, Any], vectors: tuple[np.ndarray, Any]) -> list[str]:
        full, faiss_index = vectors
        n, dim, search_dim, dtype = (
            manifest["num_documents"],
            manifest["dim"],
            manifest["search_dim"],
            manifest["vector_dtype"],
        )
        problems = []
        if full.dtype != np.dtype(dtype) or full.shape != (n, dim):
            problems.append(f"{VECTORS_FILE} is {full.dtype} {full.shape}, expected {dtype} ({n}, {dim})")
        if n and (faiss_index is None or faiss_index.ntotal != n or faiss_index.d != search_dim):
            problems.append(f"{FAISS_FILE} does not index the {n} {search_dim}-dim prefixes")
        return problems

    def _restore_vectors(self, vectors: tuple[np.ndarray, Any]) -> None:
        self._vectors, self._faiss = vectors

    def __repr__(self) -> str:
        model = None if self.model is None else self.model.model_name_or_path
        return (
            f"MRLIndex(model={model!r}, documents={len(self)}, dim={self.dim}, search_dim={self.search_dim}, "
            f"index_type={self.index_type!r}, shortlist_factor={self.shortlist_factor}, "
            f"shortlist_size={self.shortlist_size})"
        )
