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

**Storage per token** (``dim`` = 128 by default): the token vectors in float16 for exact
scoring, ``2 * dim`` bytes (256 B), plus, once the IVF index exists, FAISS's 8-bit code of the
vector and its id, ``dim + 8`` bytes (136 B): ``3 * dim + 8`` = 392 bytes per token on disk, and 8
more in memory for the token-to-document map. Texts, metadata and one offset per document come
on top. A 180-token passage takes about 70 KB; a million such passages about 70 GB.

The folder written by :meth:`ColBERTIndex.save` holds ``manifest.json`` (format, model settings,
counts, and the size and SHA-256 of every other file), ``token_vectors.npy`` (float16,
``(tokens, dim)``), ``doc_offsets.npy`` (int64, first token of each document, then the total),
``documents.jsonl`` (id, text, metadata per document, in order) and, once built, ``faiss.index``.
:meth:`ColBERTIndex.load` checks all of it and names what is missing or corrupted.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
from tqdm.auto import tqdm

from ..models.colbert import ColBERTReranker
from ..models.maxsim import maxsim_packed
from ..text.inputs import check_docs, check_positive_int, check_query
from .folder import (
    DOCUMENTS_FILE,
    MANIFEST_FILE,
    CorruptIndexError,
    IndexHit,
    atomic_save,
    check_ids,
    check_metadatas,
    check_same_weights,
    documents_problem,
    import_faiss,
    load_index_model,
    model_record,
    read_documents,
    read_manifest,
    split_documents,
    verify_checksums,
    write_documents,
    write_manifest,
)

logger = logging.getLogger(__name__)

FaissKind = Literal["auto", "ivf", "none"]

INDEX_FORMAT = "rag-retrieval-colbert-index"
INDEX_FORMAT_VERSION = 1
VECTORS_FILE = "token_vectors.npy"
OFFSETS_FILE = "doc_offsets.npy"
FAISS_FILE = "faiss.index"
DATA_FILES = (VECTORS_FILE, OFFSETS_FILE, DOCUMENTS_FILE, FAISS_FILE)

IVF_FROM_TOKENS = 100_000
"""``faiss_index="auto"`` builds the IVF index once the index holds this many token vectors."""
_MIN_POINTS_PER_CENTROID = 39  # FAISS's minimum for k-means
_TRAINING_POINTS_PER_CENTROID = 64  # the k-means sample


ModelLike = Union[ColBERTReranker, str, "os.PathLike[str]"]


def _load_model(model: ModelLike, model_kwargs: Mapping[str, Any] | None = None) -> ColBERTReranker:
    return load_index_model(model, model_kwargs, ColBERTReranker, "ColBERT model")


class ColBERTIndex:
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
        if faiss_index not in ("auto", "ivf", "none"):
            raise ValueError(f"faiss_index must be 'auto', 'ivf' or 'none', got {faiss_index!r}")
        if nlist is not None:
            check_positive_int(nlist, "nlist")
        self.model = _load_model(model, model_kwargs)
        self.faiss_index: FaissKind = faiss_index
        self.nlist = nlist
        self.nprobe = check_positive_int(nprobe, "nprobe")
        self.token_k = check_positive_int(token_k, "token_k")
        self.max_candidates = check_positive_int(max_candidates, "max_candidates")
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.show_progress_bar = show_progress_bar
        self.dim = self.model.embedding_dim
        self._lock = threading.RLock()
        self._vectors = np.zeros((0, self.dim), dtype=np.float16)
        self._token_doc = np.zeros(0, dtype=np.int64)  # document slot of each token row
        self._doc_start: list[int] = []
        self._doc_len: list[int] = []
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._metadatas: list[dict[str, Any]] = []
        self._alive: list[bool] = []
        self._slot: dict[str, int] = {}
        self._faiss: Any = None

    # ---- contents -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._slot

    @property
    def ids(self) -> list[str]:
        """Ids of the documents in the index, in insertion order."""
        with self._lock:
            return [self._ids[s] for s in range(len(self._ids)) if self._alive[s]]

    @property
    def num_tokens(self) -> int:
        """Token vectors stored for the documents in the index."""
        with self._lock:
            return int(sum(n for n, alive in zip(self._doc_len, self._alive) if alive))

    @property
    def uses_faiss(self) -> bool:
        """Whether searches take their candidates from the FAISS IVF index (else they are exhaustive)."""
        return self._faiss is not None

    def get(self, doc_id: str) -> IndexHit:
        """The stored text and metadata of a document (``score`` and ``rank`` are 0)."""
        with self._lock:
            if doc_id not in self._slot:
                raise KeyError(f"no document with id {doc_id!r} in the index")
            slot = self._slot[doc_id]
            return IndexHit(doc_id, self._texts[slot], dict(self._metadatas[slot]))

    def token_vectors(self, doc_id: str) -> np.ndarray:
        """The stored float16 ``(tokens, dim)`` token vectors of a document (a copy)."""
        with self._lock:
            if doc_id not in self._slot:
                raise KeyError(f"no document with id {doc_id!r} in the index")
            slot = self._slot[doc_id]
            start = self._doc_start[slot]
            return self._vectors[start : start + self._doc_len[slot]].copy()

    # ---- adding and deleting --------------------------------------------------------------

    def add(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Encode and add documents; returns their ids.

        Args:
            texts: the documents (each cut at the model's ``max_length`` tokens: split long
                documents first, e.g. with a text splitter).
            ids: one unique string per document (default: random UUIDs). An id already in the
                index replaces that document.
            metadatas: one JSON-serializable dict (or ``None``) per document, returned with it.
        """
        texts = check_docs(texts, "texts")
        ids = check_ids(ids, len(texts))
        metadatas = check_metadatas(metadatas, len(texts))
        if not texts:
            return []
        return self._add(texts, ids, metadatas, self._encode(texts))

    def add_vectors(
        self,
        texts: Sequence[str],
        token_vectors: Sequence[np.ndarray],
        *,
        ids: Sequence[str] | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[str]:
        """Add documents whose token vectors are already computed (by this index's model's
        ``encode_documents``, e.g. on another machine): one ``(tokens, dim)`` array per text."""
        texts = check_docs(texts, "texts")
        ids = check_ids(ids, len(texts))
        metadatas = check_metadatas(metadatas, len(texts))
        if len(token_vectors) != len(texts):
            raise ValueError(f"token_vectors has {len(token_vectors)} entries for {len(texts)} texts")
        vectors = []
        for i, v in enumerate(token_vectors):
            v = np.asarray(v)
            if v.ndim != 2 or v.shape[1] != self.dim:
                raise ValueError(f"token_vectors[{i}] must be a (tokens, {self.dim}) array, got shape {v.shape}")
            vectors.append(v.astype(np.float16))
        return self._add(texts, ids, metadatas, vectors)

    def _add(
        self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]], vectors: list[np.ndarray]
    ) -> list[str]:
        if not texts:
            return []
        with self._lock:
            replaced = [i for i in ids if i in self._slot]
            if replaced:
                self.delete(replaced)
            self._append(texts, ids, metadatas, vectors)
            if self._faiss is None and self._wants_ivf():
                self._build_ivf()
        return ids

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        """Token vectors of ``texts`` in float16, encoded in chunks under a progress bar."""
        chunk = max(256, 8 * (self.batch_size or self.model.batch_size))
        show = self.model._show_progress() if self.show_progress_bar is None else self.show_progress_bar
        out: list[np.ndarray] = []
        # one truncation warning for the whole build, not one per chunk
        with (
            self.model.truncation_scope("index build"),
            tqdm(total=len(texts), desc="Indexing", unit="doc", disable=not show) as progress,
        ):
            for start in range(0, len(texts), chunk):
                vectors = self.model.encode_documents(texts[start : start + chunk], batch_size=self.batch_size)
                out.extend(v.astype(np.float16) for v in vectors)
                progress.update(len(vectors))
        return out

    def _append(
        self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]], vectors: list[np.ndarray]
    ) -> None:
        first_row, first_slot = len(self._vectors), len(self._ids)
        lengths = [len(v) for v in vectors]
        new_vectors = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float16)
        if new_vectors.shape[1:] != (self.dim,):
            raise ValueError(f"the model gives {new_vectors.shape[1]}-dim token vectors; this index holds {self.dim}")
        if self._faiss is not None:
            self._faiss_add(new_vectors, first_row)
        self._vectors = np.concatenate([self._vectors, new_vectors]) if len(self._vectors) else new_vectors
        self._token_doc = np.concatenate(
            [self._token_doc, np.repeat(np.arange(first_slot, first_slot + len(texts)), lengths)]
        )
        starts = first_row + np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self._doc_start.extend(int(s) for s in starts)
        self._doc_len.extend(lengths)
        for offset, (doc_id, text, metadata) in enumerate(zip(ids, texts, metadatas)):
            self._ids.append(doc_id)
            self._texts.append(text)
            self._metadatas.append(metadata)
            self._alive.append(True)
            self._slot[doc_id] = first_slot + offset

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents by id; an id not in the index is a ``KeyError`` (nothing is removed then)."""
        if isinstance(ids, str) or not isinstance(ids, Sequence):
            raise TypeError(f"ids must be a list of strings, got {type(ids).__name__}")
        with self._lock:
            missing = [i for i in ids if i not in self._slot]
            if missing:
                raise KeyError(f"{len(missing)} id(s) not in the index, e.g. {missing[:3]}; nothing was deleted")
            slots = sorted({self._slot.pop(i) for i in dict.fromkeys(ids)})
            if not slots:
                return
            rows = np.concatenate(
                [np.arange(self._doc_start[s], self._doc_start[s] + self._doc_len[s]) for s in slots]
            ).astype(np.int64)
            if self._faiss is not None:
                self._faiss.remove_ids(import_faiss("ColBERT index").IDSelectorBatch(rows))
            for s in slots:
                self._alive[s] = False
            if len(self._vectors) > 2 * self.num_tokens:  # mostly dead rows: reclaim the memory
                self._compact()

    def _compact(self) -> None:
        """Drop deleted documents' rows; FAISS gets the remaining vectors again under their new row ids."""
        keep = [s for s in range(len(self._ids)) if self._alive[s]]
        vectors = [self._vectors[self._doc_start[s] : self._doc_start[s] + self._doc_len[s]] for s in keep]
        texts = [self._texts[s] for s in keep]
        ids = [self._ids[s] for s in keep]
        metadatas = [self._metadatas[s] for s in keep]
        self._vectors = np.zeros((0, self.dim), dtype=np.float16)
        self._token_doc = np.zeros(0, dtype=np.int64)
        self._doc_start, self._doc_len, self._ids, self._texts, self._metadatas, self._alive = [], [], [], [], [], []
        self._slot = {}
        if self._faiss is not None:
            self._faiss.reset()  # keeps what was trained: the IVF centroids and the quantizer ranges
        if keep:
            self._append(texts, ids, metadatas, vectors)

    def _wants_ivf(self) -> bool:
        if self.faiss_index == "none":
            return False
        if self.faiss_index == "auto":
            return self.num_tokens >= IVF_FROM_TOKENS
        return self.num_tokens >= _MIN_POINTS_PER_CENTROID * (self.nlist or 16)

    def _faiss_add(self, vectors: np.ndarray, first_row: int) -> None:
        rows = np.arange(first_row, first_row + len(vectors), dtype=np.int64)
        for start in range(0, len(vectors), 65_536):  # FAISS takes float32: converted in slices
            self._faiss.add_with_ids(
                np.asarray(vectors[start : start + 65_536], np.float32), rows[start : start + 65_536]
            )

    def _build_ivf(self) -> None:
        """Train the IVF index (k-means centroids, 8-bit quantizer) on the stored vectors and add them all."""
        faiss = import_faiss("ColBERT index")
        if len(self._vectors) != self.num_tokens:
            self._compact()
        nlist = self.nlist or max(16, int(math.sqrt(len(self._vectors))))
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(0)
        n_train = min(len(self._vectors), _TRAINING_POINTS_PER_CENTROID * nlist)
        sample = np.sort(rng.choice(len(self._vectors), n_train, replace=False))
        index.cp.seed = 0
        index.train(np.asarray(self._vectors[sample], dtype=np.float32))
        index.nprobe = min(self.nprobe, nlist)
        self.nlist = nlist
        self._faiss = index
        self._faiss_add(self._vectors, 0)

    # ---- search ---------------------------------------------------------------------------

    def search(
        self, query: str, k: int = 10, *, exhaustive: bool = False, score_threshold: float | None = None
    ) -> list[IndexHit]:
        """The ``k`` best documents for ``query`` by exact MaxSim, best first (fewer if the index is smaller).

        Args:
            query: the query text.
            k: how many documents to return.
            exhaustive: score every document instead of FAISS's candidates.
            score_threshold: drop documents scoring below this (a document scoring exactly it is kept).
        """
        return self.search_many([check_query(query)], k, exhaustive=exhaustive, score_threshold=score_threshold)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        *,
        exhaustive: bool = False,
        score_threshold: float | None = None,
    ) -> list[list[IndexHit]]:
        """:meth:`search` for several queries, encoded in one batched pass."""
        queries = check_docs(queries, "queries")
        check_positive_int(k, "k")
        if not queries:
            return []
        query_vectors = self.model.encode_queries(queries, batch_size=self.batch_size)
        return self.search_by_vectors(query_vectors, k, exhaustive=exhaustive, score_threshold=score_threshold)

    def search_by_vectors(
        self,
        query_vectors: Sequence[np.ndarray],
        k: int = 10,
        *,
        exhaustive: bool = False,
        score_threshold: float | None = None,
    ) -> list[list[IndexHit]]:
        """:meth:`search_many` for queries already encoded by the model's ``encode_queries``
        (one ``(tokens, dim)`` array each)."""
        k = check_positive_int(k, "k")
        for i, q in enumerate(query_vectors):
            if np.ndim(q) != 2 or np.shape(q)[1] != self.dim:
                raise ValueError(f"query_vectors[{i}] must be a (tokens, {self.dim}) array, got shape {np.shape(q)}")
        query_vectors = [np.asarray(q, dtype=np.float32) for q in query_vectors]
        with self._lock:
            if not self._slot:
                return [[] for _ in query_vectors]
            if exhaustive or self._faiss is None:
                results = self._exhaustive(query_vectors, k)
            else:
                results = [self._search_candidates(q, k) for q in query_vectors]
        if score_threshold is None:
            return results
        return [[hit for hit in hits if hit.score >= score_threshold] for hits in results]

    def _packed(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The token vectors of ``slots`` as one packed matrix, and each document's first row in it."""
        starts = np.asarray(self._doc_start, dtype=np.int64)[slots]
        lengths = np.asarray(self._doc_len, dtype=np.int64)[slots]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return self._vectors[rows], offsets

    def _hits(self, slots: np.ndarray, scores: np.ndarray, k: int) -> list[IndexHit]:
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            IndexHit(self._ids[slots[i]], self._texts[slots[i]], dict(self._metadatas[slots[i]]), float(scores[i]), r)
            for r, i in enumerate(order, start=1)
        ]

    def _exhaustive(self, query_vectors: list[np.ndarray], k: int) -> list[list[IndexHit]]:
        # Every stored row in place (deleted documents' rows too, until compaction), then the live columns.
        offsets = np.asarray(self._doc_start + [len(self._vectors)], dtype=np.int64)
        scores = maxsim_packed(query_vectors, self._vectors, offsets, query_mean=self.model.query_mean)
        slots = np.flatnonzero(self._alive)
        return [self._hits(slots, row[slots], k) for row in scores]

    def _search_candidates(self, query: np.ndarray, k: int) -> list[IndexHit]:
        self._faiss.nprobe = min(self.nprobe, self._faiss.nlist)
        sims, rows = self._faiss.search(np.ascontiguousarray(query, dtype=np.float32), self.token_k)
        found = rows >= 0
        if not found.any():
            return []
        docs, which = np.unique(self._token_doc[rows[found]], return_inverse=True)
        # A query token's best similarity to a document none of whose tokens it found is at most the
        # worst one it found (exactly so for a search of every token; about so for IVF): estimate with it.
        floor = np.where(found.any(axis=1), np.where(found, sims, np.inf).min(axis=1), 0.0)
        estimate = np.repeat(floor[:, None], len(docs), axis=1)
        np.maximum.at(estimate, (np.nonzero(found)[0], which), sims[found])
        candidates = docs[np.argsort(-estimate.sum(axis=0), kind="stable")[: self.max_candidates]]
        tokens, offsets = self._packed(candidates)
        scores = maxsim_packed([query], tokens, offsets, query_mean=self.model.query_mean)[0]
        return self._hits(candidates, scores, k)

    # ---- persistence ----------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder`` (created if needed; an index already there is replaced)."""
        faiss = import_faiss("ColBERT index")
        target = Path(folder)
        with self._lock, atomic_save(target, DATA_FILES) as folder:
            if len(self._vectors) != self.num_tokens:
                self._compact()
            np.save(folder / VECTORS_FILE, self._vectors, allow_pickle=False)
            offsets = np.asarray(self._doc_start + [len(self._vectors)], dtype=np.int64)
            np.save(folder / OFFSETS_FILE, offsets, allow_pickle=False)
            write_documents(folder / DOCUMENTS_FILE, self._ids, self._texts, self._metadatas)
            if self._faiss is not None:
                faiss.write_index(self._faiss, str(folder / FAISS_FILE))
            files = [name for name in DATA_FILES if (folder / name).is_file()]
            manifest = {
                "format": INDEX_FORMAT,
                "format_version": INDEX_FORMAT_VERSION,
                "model": model_record(self.model.settings(), self.model.model_name_or_path),
                "num_documents": len(self._ids),
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
            write_manifest(folder, manifest, files)
        return target

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        model: ModelLike | None = None,
        *,
        verify: bool = True,
        model_kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ColBERTIndex:
        """Open an index written by :meth:`save`.

        Args:
            folder: the index folder.
            model: the ColBERT model to encode queries (and new documents) with; default: the
                model recorded in the manifest, loaded with its recorded lengths. A model with
                another token dimension is an error.
            verify: check every file's SHA-256 against the manifest (reads the whole index once).
            model_kwargs: options for ``Reranker(...)`` when the model is loaded from a path.
            **options: search options overriding the saved ones (``nprobe``, ``token_k``,
                ``max_candidates``, ``batch_size``, ``show_progress_bar``).

        Raises:
            IndexNotFoundError: ``folder`` does not exist.
            CorruptIndexError: no valid manifest, or a file missing, truncated or changed.
        """
        faiss = import_faiss("ColBERT index")
        folder = Path(folder)
        manifest = _read_manifest(folder)
        settings = manifest["model"]
        if model is None:
            kwargs = {
                "max_length": settings.get("document_length"),
                "query_length": settings.get("query_length"),
                "query_expansion": settings.get("query_expansion"),
                "query_mean": settings.get("query_mean"),
            }
            model_kwargs = {**{k: v for k, v in kwargs.items() if v is not None}, **dict(model_kwargs or {})}
            model = settings["model"]
        search = {**manifest.get("search", {}), **options}
        index = cls(
            model,
            faiss_index=manifest["faiss"]["mode"],
            nlist=manifest["faiss"].get("nlist"),
            model_kwargs=model_kwargs,
            **search,
        )
        if index.dim != manifest["dim"]:
            raise ValueError(
                f"the model gives {index.dim}-dim token vectors but the index at {str(folder)!r} holds "
                f"{manifest['dim']}-dim ones (built with {settings.get('model')!r}); load it with that model"
            )
        check_same_weights(settings, index.model.model_name_or_path, folder)
        _warn_on_setting_changes(index.model, settings, folder)
        if verify:
            verify_checksums(folder, manifest)
        try:
            vectors = np.load(
                folder / VECTORS_FILE, mmap_mode="c", allow_pickle=False
            )  # copy-on-write: disk never changes
            offsets = np.load(folder / OFFSETS_FILE, allow_pickle=False)
            documents = read_documents(folder / DOCUMENTS_FILE)
            faiss_index = faiss.read_index(str(folder / FAISS_FILE)) if (folder / FAISS_FILE).is_file() else None
        except (ValueError, OSError, RuntimeError, json.JSONDecodeError) as e:
            raise CorruptIndexError(f"{folder} holds an unreadable index file: {e}") from None
        _check_shapes(folder, manifest, vectors, offsets, documents, faiss_index)
        index._vectors = vectors
        index._doc_start = [int(s) for s in offsets[:-1]]
        index._doc_len = [int(n) for n in np.diff(offsets)]
        index._token_doc = np.repeat(np.arange(len(documents)), index._doc_len)
        index._ids, index._texts, index._metadatas = split_documents(documents)
        index._alive = [True] * len(documents)
        index._slot = {doc_id: slot for slot, doc_id in enumerate(index._ids)}
        index._faiss = faiss_index
        return index

    def __repr__(self) -> str:
        return (
            f"ColBERTIndex(model={self.model.model_name_or_path!r}, documents={len(self)}, "
            f"tokens={self.num_tokens}, faiss_index={self.faiss_index!r}, ivf_built={self.uses_faiss})"
        )


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest = read_manifest(
        folder,
        kind="a ColBERT",
        writer="ColBERTIndex.save",
        index_format=INDEX_FORMAT,
        version=INDEX_FORMAT_VERSION,
        keys=("model", "dim", "num_documents", "num_tokens", "faiss"),
        required_files=(VECTORS_FILE, OFFSETS_FILE, DOCUMENTS_FILE),
    )
    if manifest["faiss"].get("mode") not in ("auto", "ivf", "none"):
        raise CorruptIndexError(f"{folder / MANIFEST_FILE}: faiss.mode must be 'auto', 'ivf' or 'none'")
    return manifest


def _check_shapes(
    folder: Path,
    manifest: dict[str, Any],
    vectors: np.ndarray,
    offsets: np.ndarray,
    documents: list[Any],
    faiss_index: Any,
) -> None:
    n_docs, n_tokens, dim = manifest["num_documents"], manifest["num_tokens"], manifest["dim"]
    problems = []
    if vectors.dtype != np.float16 or vectors.shape != (n_tokens, dim):
        problems.append(f"{VECTORS_FILE} is {vectors.dtype} {vectors.shape}, expected float16 ({n_tokens}, {dim})")
    if offsets.shape != (n_docs + 1,) or offsets[0] != 0 or offsets[-1] != n_tokens or np.any(np.diff(offsets) < 0):
        problems.append(f"{OFFSETS_FILE} does not hold {n_docs + 1} increasing offsets from 0 to {n_tokens}")
    if problem := documents_problem(documents, n_docs):
        problems.append(problem)
    if manifest["faiss"].get("built") and faiss_index is None:
        problems.append(f"{FAISS_FILE} is missing, but the manifest says it was built")
    elif faiss_index is not None and (faiss_index.ntotal != n_tokens or faiss_index.d != dim):
        problems.append(f"{FAISS_FILE} does not index the {n_tokens} {dim}-dim token vectors")
    if problems:
        raise CorruptIndexError(f"{folder} is inconsistent: " + "; ".join(problems))


def _warn_on_setting_changes(model: ColBERTReranker, saved: dict[str, Any], folder: Path) -> None:
    current = model.settings()
    changed = [
        f"{key}: index {saved.get(key)!r}, model {current[key]!r}"
        for key in ("query_length", "query_expansion", "document_length", "query_mean", "prompts")
        if key in saved and saved[key] != current[key]
    ]
    if changed:
        logger.warning(
            "the model encodes differently from the one that built the index at %s (%s): scores of new and old "
            "documents may not compare",
            folder,
            "; ".join(changed),
        )
