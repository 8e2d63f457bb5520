"""``HybridIndex``: several indexes (BM25, learned sparse, MRL, ColBERT) over one set of documents, their rankings fused.

The hybrid is the documents' one entry point: :meth:`~HybridIndex.add` encodes each text with
every part and adds it to every part under the same id, :meth:`~HybridIndex.delete` removes it
from all of them, and :meth:`~HybridIndex.save` writes the parts into ``parts/<name>/`` of one
atomic save, so ids, deletes and saves never drift apart. A search asks each part for its
``candidates`` best documents and fuses the lists (:mod:`.fusion`: RRF by default, or weighted
min-max / z-score sums); the hybrid's score is the fused one.

The parts hold the documents too (each part is a whole index, searchable alone through
:attr:`HybridIndex.parts`); loading checks that they hold the same ids as the hybrid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..options import check_positive_int
from .bm25 import BM25Index
from .colbert import ColBERTIndex
from .documents import IndexHit
from .file_index import FileIndex, Manifest
from .folder import MANIFEST_FILE, CorruptIndexError
from .fusion import DEFAULT_RRF_K, Fusion, check_fusion, fuse
from .mrl import MRLIndex
from .sparse import SparseIndex

PARTS_FOLDER = "parts"
DEFAULT_CANDIDATES = 100
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PART_CLASSES: dict[str, type[FileIndex]] = {
    cls.index_format: cls for cls in (BM25Index, MRLIndex, ColBERTIndex, SparseIndex)
}
"""The index kinds a hybrid can hold, by manifest format (what :meth:`HybridIndex.load` reads back)."""


def _check_weights(weights: Mapping[str, float] | None, names: Sequence[str]) -> dict[str, float]:
    if weights is None:
        return {name: 1.0 for name in names}
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"weights for unknown part(s) {unknown}; the parts are {list(names)}")
    checked = {}
    for name in names:
        w = weights.get(name, 1.0)
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w) or w < 0:
            raise ValueError(f"weights[{name!r}] must be a finite number >= 0, got {w!r}")
        checked[name] = float(w)
    if not any(checked.values()):
        raise ValueError("at least one weight must be above 0")
    return checked


def _parts_problem(parts: Mapping[str, FileIndex]) -> str | None:
    """Why ``parts`` cannot be one hybrid's (they hold different ids, or in another order), or ``None``."""
    (first_name, first), *others = parts.items()
    for name, part in others:
        if part.ids != first.ids:
            return (
                f"part {name!r} holds other documents than part {first_name!r} ({len(part)} vs {len(first)}); "
                "a hybrid's parts hold the same ids in the same order"
            )
    return None


class HybridIndex(FileIndex):
    """Documents indexed by several parts, searched by fusing the parts' rankings.

    Args:
        parts: the indexes, by name (``{"bm25": BM25Index(), "dense": MRLIndex("./minilm")}``); in
            order, they are the tie-break. Parts given with documents must hold the same ids,
            texts and metadata (they are taken as the hybrid's); empty parts are the usual start.
        fusion: ``"rrf"`` (reciprocal rank, the default: scale-free), ``"minmax"`` or ``"zscore"``
            (weighted sums of normalized scores); see :mod:`.fusion`.
        weights: a weight per part name (default 1 each; a part left out weighs 1).
        rrf_k: RRF's rank offset (60, as in Cormack et al. and most engines).
        candidates: how deep each part's list is: ``max(k, candidates)`` documents per part and query.

    Example::

        hybrid = HybridIndex({"bm25": BM25Index(), "dense": MRLIndex("./minilm")})
        hybrid.add(texts, ids=ids)
        hybrid.search("what is a panda?", k=10)              # RRF of BM25 and the dense ranking
        hybrid.search("what is a panda?", k=10, fusion="minmax", weights={"bm25": 0.3, "dense": 0.7})
        hybrid.save("./hybrid"); hybrid = HybridIndex.load("./hybrid")   # each part's model from its manifest
    """

    described_as: ClassVar[str] = "a hybrid index"
    index_format: ClassVar[str] = "rag-retrieval-hybrid-index"
    manifest_keys: ClassVar[tuple[str, ...]] = ("parts", "fusion", "weights", "rrf_k", "candidates")
    vector_files: ClassVar[tuple[str, ...]] = (PARTS_FOLDER,)
    required_files: ClassVar[tuple[str, ...]] = ()
    build_settings: ClassVar[frozenset[str]] = frozenset({"parts"})
    search_settings: ClassVar[frozenset[str]] = frozenset(
        {"fusion", "weights", "rrf_k", "candidates", "models", "part_options"}
    )
    family: ClassVar[None] = None
    model_noun: ClassVar[str] = "parts' models"
    model: None = None

    def __init__(
        self,
        parts: Mapping[str, FileIndex],
        *,
        fusion: Fusion = "rrf",
        weights: Mapping[str, float] | None = None,
        rrf_k: float = DEFAULT_RRF_K,
        candidates: int = DEFAULT_CANDIDATES,
    ) -> None:
        if not isinstance(parts, Mapping) or not parts:
            raise TypeError("parts must be a non-empty dict of name -> index, e.g. {'bm25': BM25Index(), ...}")
        for name, part in parts.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise ValueError(f"part name {name!r} must be letters, digits, '_', '-' or '.' (it names a folder)")
            if not isinstance(part, FileIndex) or isinstance(part, HybridIndex):
                raise TypeError(
                    f"parts[{name!r}] must be an index (BM25Index, MRLIndex, ColBERTIndex...), got {part!r}"
                )
        if len({id(p) for p in parts.values()}) != len(parts):
            raise ValueError("the same index object is given as two parts; give each part its own index")
        super().__init__()
        self.parts: dict[str, FileIndex] = dict(parts)
        self.fusion: Fusion = check_fusion(fusion)  # type: ignore[assignment]
        self.weights = _check_weights(weights, list(self.parts))
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, (int, float)) or not rrf_k >= 0:
            raise ValueError(f"rrf_k must be a number >= 0, got {rrf_k!r}")
        self.rrf_k = float(rrf_k)
        self.candidates = check_positive_int(candidates, "candidates")
        if problem := _parts_problem(self.parts):
            raise ValueError(problem)
        # the first part's documents are the hybrid's (the others hold the same ids, checked above)
        first = next(iter(self.parts.values()))
        for doc_id in first.ids:
            hit = first.get(doc_id)
            self._append_documents([hit.text], [doc_id], [hit.metadata])

    def check_encodes_queries(self) -> None:
        """A ``ValueError`` if a part cannot encode a query (an index of given vectors)."""
        for name, part in self.parts.items():
            check = getattr(part, "check_encodes_queries", None)
            if check is not None:
                try:
                    check()
                except ValueError as e:
                    raise ValueError(f"part {name!r}: {e}") from None

    # ---- documents: every change goes to every part -----------------------------------------

    def encode_documents(self, texts: Sequence[str]) -> dict[str, Any]:
        """Each part's encoding of ``texts``, by part name (what :meth:`add_vectors` takes)."""
        return {name: part.encode_documents(texts) for name, part in self.parts.items()}

    def encode_queries(self, queries: Sequence[str]) -> dict[str, Any]:
        """Each part's encoding of ``queries``, by part name (what :meth:`search_by_vectors` takes)."""
        return {name: part.encode_queries(queries) for name, part in self.parts.items()}

    def _check_vectors(self, vectors: Any, n: int) -> dict[str, Any]:
        if not isinstance(vectors, Mapping) or set(vectors) != set(self.parts):
            raise ValueError(f"a hybrid index takes a dict of each part's vectors, keys {list(self.parts)}")
        return {name: part._check_vectors(vectors[name], n) for name, part in self.parts.items()}

    def _store(self, texts: list[str], ids: list[str], metadatas: list[dict[str, Any]], vectors: Any) -> list[str]:
        # each part replaces and appends on its own (the same way: a replaced id moves to the end),
        # then the hybrid's own documents follow, so every part keeps the hybrid's row order
        if not texts:
            return []
        with self._lock:
            for name, part in self.parts.items():
                part.add_vectors(texts, vectors[name], ids=ids, metadatas=metadatas)
            replaced = sorted(self._row[i] for i in ids if i in self._row)
            if replaced:
                self._drop_documents(np.array(replaced, dtype=np.int64))
            self._append_documents(texts, ids, metadatas)
        return ids

    def _append_vectors(self, vectors: Any) -> None:
        raise AssertionError("HybridIndex stores through _store, which adds to every part")  # never called

    def _delete_vectors(self, rows: np.ndarray) -> None:
        ids = [self._ids[r] for r in rows]
        for part in self.parts.values():
            part.delete(ids)

    # ---- search -------------------------------------------------------------------------------

    def search_by_vectors(
        self,
        query_vectors: Any,
        k: int = 10,
        *,
        score_threshold: float | None = None,
        fusion: Fusion | None = None,
        weights: Mapping[str, float] | None = None,
        rrf_k: float | None = None,
        candidates: int | None = None,
    ) -> list[list[IndexHit]]:
        """The ``k`` best documents by fused score for each query (``query_vectors``: :meth:`encode_queries`'s
        dict); ``fusion``, ``weights``, ``rrf_k`` and ``candidates`` override the index's for this call;
        ``score_threshold`` applies to the fused score."""
        k = check_positive_int(k, "k")
        fusion = check_fusion(self.fusion if fusion is None else fusion)  # type: ignore[assignment]
        weights = self.weights if weights is None else _check_weights(weights, list(self.parts))
        rrf_k = self.rrf_k if rrf_k is None else rrf_k
        depth = max(k, self.candidates if candidates is None else check_positive_int(candidates, "candidates"))
        if not isinstance(query_vectors, Mapping) or set(query_vectors) != set(self.parts):
            raise ValueError(f"query_vectors must be a dict of each part's query vectors, keys {list(self.parts)}")
        with self._lock:
            lists = {name: part.search_by_vectors(query_vectors[name], depth) for name, part in self.parts.items()}
            results = []
            for q in range(len(next(iter(lists.values())))):
                fused = fuse(
                    [[(hit.id, hit.score) for hit in lists[name][q]] for name in self.parts],
                    fusion=fusion,
                    weights=[weights[name] for name in self.parts],
                    rrf_k=rrf_k,
                )[:k]
                results.append(self._hits([self._row[i] for i, _ in fused], [s for _, s in fused], score_threshold))
        return results

    # ---- persistence hooks --------------------------------------------------------------------

    def _model_settings(self) -> dict[str, Any]:
        return {}

    def _manifest(self) -> dict[str, Any]:
        return {
            "parts": {name: part.index_format for name, part in self.parts.items()},
            "fusion": self.fusion,
            "weights": self.weights,
            "rrf_k": self.rrf_k,
            "candidates": self.candidates,
        }

    def _save_vectors(self, folder: Path) -> list[str]:
        # each part is a whole index folder with its own checked manifest; the hybrid's manifest
        # records the parts' manifests, whose checksums cover every file of the part
        for name, part in self.parts.items():
            part.save(folder / PARTS_FOLDER / name)
        return [f"{PARTS_FOLDER}/{name}/{MANIFEST_FILE}" for name in self.parts]

    @classmethod
    def _check_manifest(cls, folder: Path, manifest: dict[str, Any]) -> None:
        parts = manifest["parts"]
        unknown = {n: k for n, k in parts.items() if k not in PART_CLASSES} if isinstance(parts, dict) else parts
        if not isinstance(parts, dict) or not parts or unknown:
            raise CorruptIndexError(f"{folder}: the manifest's parts {unknown or parts!r} are not index kinds")

    @classmethod
    def _from_manifest(cls, folder: Path, manifest: Manifest, model: Any, options: dict[str, Any]) -> HybridIndex:
        """The hybrid with its parts loaded from ``parts/<name>/`` (each part's model from its own manifest,
        unless ``models`` names one; ``part_options`` are each part's ``load`` options)."""
        models = dict(options.pop("models", None) or {})
        part_options = dict(options.pop("part_options", None) or {})
        names = list(manifest["parts"])
        unknown = sorted((set(models) | set(part_options)) - set(names))
        if unknown:
            raise ValueError(f"models/part_options name unknown part(s) {unknown}; the parts are {names}")
        parts = {
            name: PART_CLASSES[kind].load(
                folder / PARTS_FOLDER / name, models.get(name), **dict(part_options.get(name) or {})
            )
            for name, kind in manifest["parts"].items()
        }
        if problem := _parts_problem(parts):
            raise CorruptIndexError(f"{folder} is inconsistent: {problem}")
        settings = {key: manifest[key] for key in ("fusion", "weights", "rrf_k", "candidates")}
        return cls(parts, **{**settings, **options})

    def _read_vectors(self, folder: Path, manifest: dict[str, Any]) -> None:
        return None  # the parts were read with the index (_from_manifest)

    def _vector_problems(self, manifest: dict[str, Any], vectors: None) -> list[str]:
        return []

    def _restore_vectors(self, vectors: None) -> None:
        # the hybrid's documents file and its parts' must agree: one store, never drifted apart
        first = next(iter(self.parts.values()))
        if first.ids != self._ids:
            raise CorruptIndexError(
                f"the hybrid's {len(self)} documents are not its parts' ({len(first)}); the folder was changed"
            )

    def __repr__(self) -> str:
        parts = ", ".join(f"{name}={type(part).__name__}" for name, part in self.parts.items())
        return (
            f"HybridIndex(documents={len(self)}, parts=({parts}), fusion={self.fusion!r}, "
            f"weights={self.weights}, candidates={self.candidates})"
        )
