"""Retrieving a corpus with the core layer's indexes, and measuring recall, nDCG and MRR.

Every retriever is an index of :mod:`rag_retrieval_integrations.core`, so scores are the ones
the integrations' retrievers give (nothing is pooled or scored here):

- ``embedding``: exhaustive search by the model's similarity: an
  :class:`~rag_retrieval_integrations.core.MRLIndex` whose FAISS flat inner-product shortlist
  covers all dimensions and is exactly ``k`` deep, so it returns the exact top ``k``.
- ``mrl``: an :class:`~rag_retrieval_integrations.core.MRLIndex` with its defaults: a shortlist on
  the smallest Matryoshka dim the checkpoint was trained with, re-scored with full vectors.
- ``colbert``: a :class:`~rag_retrieval_integrations.core.ColBERTIndex` (exact MaxSim; FAISS IVF
  candidates once the corpus has 100,000 token vectors).

- ``sparse``: a :class:`~rag_retrieval_integrations.core.SparseIndex` (learned sparse, SPLADE: exact
  dot products over an inverted index of the model's term weights).
- ``bm25``: a :class:`~rag_retrieval_integrations.core.BM25Index` (``bm25s``); its "model" is the
  word ``bm25`` (no checkpoint), its options the index's (``k1``, ``b``, ``method``, ``stemmer``...).
- ``hybrid``: a :class:`~rag_retrieval_integrations.core.HybridIndex` of BM25 and the model's own
  retriever (``embedding``, ``colbert`` or ``sparse``, as ``auto`` picks it), fused (``fusion``, ``weights`` by
  part name ``bm25``/``dense``, ``rrf_k``, ``candidates``; BM25 settings go to its part).

``auto`` picks ``colbert`` for a ColBERT checkpoint, ``sparse`` for a ``SparseEncoder`` and ``embedding``
for a sentence-transformers one, from the checkpoint's own files (as ``Reranker`` detects its family), and ``bm25`` for the word ``bm25``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rag_retrieval_integrations.core import (
    BaseReranker,
    BM25Index,
    ColBERTIndex,
    EmbeddingModel,
    HybridIndex,
    Index,
    IndexHit,
    MRLIndex,
    QdrantColBERTIndex,
    QdrantMRLIndex,
    Reranker,
    SparseIndex,
    detect_model_type,
    read_checkpoint,
)
from rag_retrieval_integrations.core.indexes.bm25 import names_bm25
from rag_retrieval_integrations.core.indexes.folder import MANIFEST_FILE, saved_format

from .metrics import RETRIEVAL_METRICS, deepest_cutoff, evaluate_run
from .retrieval_data import RetrievalSet

RETRIEVERS = ("auto", "embedding", "colbert", "mrl", "sparse", "bm25", "hybrid")
DEFAULT_TOP_K = 100
"""Run depth when no metric has a cutoff (``MAP``, ``R``)."""

ModelPath = str | os.PathLike[str]
# a loaded embedding or ColBERT model is indexed as it is (a trainer evaluates the model it trains)
ModelLike = ModelPath | BaseReranker

INDEX_CLASSES: dict[str, type[Index]] = {
    "embedding": MRLIndex,
    "mrl": MRLIndex,
    "colbert": ColBERTIndex,
    "sparse": SparseIndex,
    "bm25": BM25Index,
    "hybrid": HybridIndex,
}
QDRANT_CLASSES: dict[str, type[Index]] = {
    "embedding": QdrantMRLIndex,
    "mrl": QdrantMRLIndex,
    "colbert": QdrantColBERTIndex,
}
"""The same retrievers on the Qdrant engine: an ``--index`` folder it wrote is loaded with these."""
FUSION_OPTIONS = frozenset({"fusion", "weights", "rrf_k", "candidates"})
DENSE_PART = "dense"
# search settings that are the model's own options here (the index would take the model's anyway)
_MODEL_OPTIONS = {"batch_size", "show_progress_bar"}


def resolve_retriever(
    model: ModelLike, retriever: str = "auto", *, revision: str | None = None, token: str | bool | None = None
) -> str:
    """The retriever to use for ``model``: ``retriever`` itself, or for ``"auto"`` the one its checkpoint
    (or, for a loaded model, its family) calls for.

    Raises:
        ValueError: an unknown ``retriever``, or ``"auto"`` on a checkpoint that is neither an
            embedding nor a ColBERT model (a cross-encoder, an LLM reranker).
        FileNotFoundError: ``model`` does not exist.
    """
    if retriever not in RETRIEVERS:
        raise ValueError(f"unknown retriever {retriever!r}; choose one of {list(RETRIEVERS)}")
    if names_bm25(model) or retriever == "bm25":
        if not names_bm25(model) or retriever not in ("auto", "bm25"):
            raise ValueError(
                f"the bm25 retriever takes the model 'bm25' (no checkpoint), got model {model!r} with "
                f"--retriever {retriever}; for BM25 fused with a model, use --retriever hybrid"
            )
        return "bm25"
    if retriever == "hybrid":
        resolve_retriever(model, "auto", revision=revision, token=token)  # its dense part must be a retriever
        return "hybrid"
    if retriever != "auto":
        return retriever
    if isinstance(model, BaseReranker):
        kind, name = model.model_type, model.model_name_or_path
    else:
        kind, name = detect_model_type(read_checkpoint(model, revision=revision, token=token)), os.fspath(model)
    if kind in ("colbert", "embedding", "sparse"):
        return kind
    raise ValueError(
        f"{name!r} is a {kind!r} checkpoint, which scores pairs and cannot search a corpus; retrieval "
        "needs an embedding or ColBERT model (--retriever embedding would use it as a bi-encoder anyway)"
    )


def split_options(retriever: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` split into the index's settings and the model's (``Reranker``) options.

    Index settings are the arguments of :class:`MRLIndex` (``mrl``: ``search_dim``,
    ``shortlist_factor``, ``index_type``...) or :class:`ColBERTIndex` (``colbert``: ``nprobe``,
    ``max_candidates``...); everything else (``max_length``, ``batch_size``, ``device``...) goes to
    the model. The ``embedding`` retriever takes no index settings: its search is exhaustive.
    """
    index_class = INDEX_CLASSES[retriever]
    index_keys = (index_class.build_settings | index_class.search_settings) - _MODEL_OPTIONS
    index_options = {k: v for k, v in options.items() if k in index_keys}
    model_options = {k: v for k, v in options.items() if k not in index_keys}
    if retriever == "embedding" and index_options:
        raise ValueError(
            f"option(s) {sorted(index_options)} are MRL index settings: use --retriever mrl "
            "(the embedding retriever searches exhaustively)"
        )
    return index_options, model_options


def build_index(
    model: ModelLike,
    retriever: str,
    data: RetrievalSet,
    *,
    options: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
    index_dir: str | os.PathLike[str] | None = None,
) -> Index:
    """An index of ``data``'s corpus for ``model`` (``retriever`` as given by :func:`resolve_retriever`).

    With ``index_dir``, an index already saved there is loaded (it must hold exactly this
    corpus); otherwise the index is built and saved there. A loaded ``model`` takes no model
    options (it is used as it is) and shows progress bars as ``show_progress`` says.
    """
    if retriever not in RETRIEVERS[1:]:
        raise ValueError(f"retriever must be one of {list(RETRIEVERS[1:])}, got {retriever!r}")
    options = dict(options or {})
    if index_dir is not None and (Path(index_dir) / MANIFEST_FILE).is_file():
        index = _load_index(Path(index_dir), model, retriever, options, show_progress)
        if len(index) != len(data.doc_ids) or any(
            doc_id not in index or index.get(doc_id).text != text for doc_id, text in zip(data.doc_ids, data.doc_texts)
        ):
            raise ValueError(
                f"the index at {str(index_dir)!r} does not hold this set's corpus ({len(data.doc_ids)} "
                f"documents from {data.source}); pass another --index folder"
            )
        return index
    index = new_index(model, retriever, options, show_progress)
    index.add(data.doc_texts, ids=data.doc_ids)
    if index_dir is not None:
        index.save(index_dir)
    return index


def _hybrid_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A hybrid's ``options`` split into the fusion's, the BM25 part's and the dense part's (index and model)."""
    bm25_keys = BM25Index.build_settings | BM25Index.search_settings
    fusion = {k: v for k, v in options.items() if k in FUSION_OPTIONS}
    bm25 = {k: v for k, v in options.items() if k in bm25_keys}
    return fusion, bm25, {k: v for k, v in options.items() if k not in FUSION_OPTIONS | bm25_keys}


def new_index(model: ModelLike, retriever: str, options: Mapping[str, Any], show_progress: bool | None) -> Index:
    """An empty index of ``retriever`` for ``model`` with ``options`` (index settings and model options,
    see :func:`split_options`; BM25 takes only its own settings)."""
    if retriever == "bm25":
        allowed = BM25Index.build_settings | BM25Index.search_settings
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ValueError(f"option(s) {unknown} are not BM25 settings; BM25 takes {sorted(allowed)}")
        return BM25Index(**options)
    if retriever == "hybrid":
        fusion, bm25, rest = _hybrid_options(options)
        dense = new_index(model, resolve_retriever(model), rest, show_progress)
        return HybridIndex({"bm25": BM25Index(**bm25), DENSE_PART: dense}, **fusion)
    index_options, model_options = split_options(retriever, options)
    loaded = isinstance(model, BaseReranker)
    if loaded and model_options:
        raise ValueError(f"option(s) {sorted(model_options)} only apply when loading the model from a path")
    if show_progress is not None:
        # a loaded model's own setting stays as it is: the index passes its own to every encode call
        (index_options if loaded else model_options).setdefault("show_progress_bar", show_progress)
    if retriever != "embedding":
        return INDEX_CLASSES[retriever](model, model_kwargs=model_options or None, **index_options)
    encoder = model if loaded else Reranker(model, "embedding", **model_options)
    if not isinstance(encoder, EmbeddingModel):
        raise TypeError(f"the embedding retriever needs an embedding model, got a {encoder.model_type!r} model")
    # all dims, k deep: the exact top k
    return MRLIndex(encoder, search_dim=encoder.embedding_dim, shortlist_factor=1, **index_options)


def _load_index(
    folder: Path, model: ModelLike, retriever: str, options: dict[str, Any], show_progress: bool | None
) -> Index:
    """The index saved at ``folder``, refused if it was built with other settings than ``options`` ask for."""
    if retriever == "bm25":
        new_index(model, retriever, options, show_progress)  # the options are BM25's
        index: Index = BM25Index.load(folder, **{k: v for k, v in options.items() if k in BM25Index.search_settings})
        _check_built(folder, index, {k: v for k, v in options.items() if k in BM25Index.build_settings})
        return index
    if retriever == "hybrid":
        fusion, bm25, rest = _hybrid_options(options)
        dense = _load_index(folder / "parts" / DENSE_PART, model, resolve_retriever(model), rest, show_progress)
        index = HybridIndex.load(
            folder,
            models={DENSE_PART: dense.model},
            part_options={"bm25": {k: v for k, v in bm25.items() if k in BM25Index.search_settings}},
            **fusion,
        )
        _check_built(folder, index.parts["bm25"], {k: v for k, v in bm25.items() if k in BM25Index.build_settings})
        return index
    index_options, model_options = split_options(retriever, options)
    loaded = isinstance(model, BaseReranker)
    if loaded and model_options:
        raise ValueError(f"option(s) {sorted(model_options)} only apply when loading the model from a path")
    if show_progress is not None:
        (index_options if loaded else model_options).setdefault("show_progress_bar", show_progress)
    if retriever == "embedding":
        index_options = {"shortlist_factor": 1}
    index_class = INDEX_CLASSES[retriever]
    engine_class = QDRANT_CLASSES.get(retriever)
    if engine_class is not None and saved_format(folder) == engine_class.index_format:
        index_class = engine_class  # a folder of the Qdrant engine (rag-retrieval-index convert, or built so)
    built = {k: v for k, v in index_options.items() if k in index_class.build_settings}
    search = {k: v for k, v in index_options.items() if k not in built}
    index = index_class.load(folder, model, model_kwargs=model_options, **search)
    if retriever == "embedding":
        assert isinstance(index, (MRLIndex, QdrantMRLIndex))
        if index.search_dim != index.dim:
            raise ValueError(
                f"the index at {str(folder)!r} shortlists on {index.search_dim} of {index.dim} dims: "
                "it is an MRL index; use --retriever mrl"
            )
    _check_built(folder, index, built)
    return index


def _check_built(folder: Path, index: Index, built: Mapping[str, Any]) -> None:
    differ = {k: getattr(index, k, None) for k, v in built.items() if getattr(index, k, None) != v}
    if isinstance(index, BM25Index):
        analyzer = index.analyzer.as_dict()
        differ = {k: analyzer[k] for k, v in built.items() if analyzer[k] != (list(v) if isinstance(v, tuple) else v)}
    if differ:
        raise ValueError(
            f"the index at {str(folder)!r} was built with {differ}; leave out those options "
            "or pass another --index folder"
        )


def retrieve(
    index: Index, queries: Sequence[str], k: int, *, show_progress: bool | None = None, chunk_size: int = 256
) -> list[list[IndexHit]]:
    """The ``k`` best documents of ``index`` for each query, best first.

    Queries are encoded in one batched pass, then searched ``chunk_size`` at a time under a
    progress bar (shown when ``show_progress``, by default as the model's setting).
    """
    vectors = index.encode_queries(queries)  # an index without a model says so
    model = encoding_model(index)
    show = (model is not None and model._show_progress()) if show_progress is None else show_progress
    hits: list[list[IndexHit]] = []
    with tqdm(total=len(queries), desc="Searching", unit="query", disable=not show) as progress:
        for start in range(0, len(queries), chunk_size):
            hits.extend(index.search_by_vectors(_query_rows(vectors, start, start + chunk_size), k))
            progress.update(min(chunk_size, len(queries) - start))
    return hits


def _query_rows(vectors: Any, start: int, stop: int) -> Any:
    """Queries ``start:stop`` of ``encode_queries``'s output (a hybrid's: a dict of each part's)."""
    if isinstance(vectors, Mapping):
        return {name: _query_rows(part, start, stop) for name, part in vectors.items()}
    return vectors[start:stop]


def run_depth(top_k: int | None, metrics: Sequence[str]) -> int:
    """How many documents to retrieve per query: ``top_k``, by default the deepest metric cutoff.

    A ``top_k`` shallower than a metric's cutoff (``--top-k 10`` with ``R@100``) is an error.
    """
    cutoff = deepest_cutoff(metrics)
    if top_k is None:
        return cutoff or DEFAULT_TOP_K
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if cutoff is not None and top_k < cutoff:
        raise ValueError(
            f"top_k={top_k} is shallower than the metrics' deepest cutoff ({cutoff}); retrieve at least {cutoff}"
        )
    return top_k


def evaluate_retriever(
    model: ModelLike,
    data: RetrievalSet,
    *,
    retriever: str = "auto",
    metrics: Sequence[str] = RETRIEVAL_METRICS,
    top_k: int | None = None,
    options: Mapping[str, Any] | None = None,
    show_progress: bool | None = None,
    index_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Index ``data``'s corpus with ``model``, retrieve for every query and score the run.

    Args:
        model: an embedding or ColBERT checkpoint (folder or hub id), or such a model already loaded.
        data: the set, from :func:`~rag_retrieval_integrations.evaluation.load_retrieval_set`.
        retriever: ``"auto"``, ``"embedding"``, ``"colbert"`` or ``"mrl"`` (see the module docstring).
        metrics: ``ir_measures`` names (``MRR`` stands for ``RR``), e.g. ``R@100``, ``nDCG@10``.
        top_k: documents retrieved per query (default: the deepest metric cutoff), at most the corpus.
        options: index settings and model options, see :func:`split_options`.
        show_progress: progress bars while indexing and searching (default: the model's setting).
        index_dir: load the index from this folder if it holds one, else build it and save it there.

    Returns:
        the metrics, ``queries`` (scored), ``queries_without_relevant``, ``retriever``,
        ``documents``, ``top_k`` and the seconds spent indexing and searching.
    """
    depth = run_depth(top_k, metrics)
    options = dict(options or {})
    kind = resolve_retriever(model, retriever, revision=options.get("revision"), token=options.get("token"))
    started = time.perf_counter()
    index = build_index(model, kind, data, options=options, show_progress=show_progress, index_dir=index_dir)
    indexed = time.perf_counter()
    hits = retrieve(index, data.query_texts, min(depth, len(data.doc_ids)), show_progress=show_progress)
    searched = time.perf_counter()
    run = {qid: {hit.id: hit.score for hit in found} for qid, found in zip(data.query_ids, hits)}
    scores = evaluate_run(run, data.qrels, metrics)
    return {
        "retriever": kind,
        **scores,
        "queries_without_relevant": data.queries_without_relevant,
        "documents": len(data.doc_ids),
        "top_k": depth,
        "index_seconds": round(indexed - started, 3),
        "search_seconds": round(searched - indexed, 3),
        # what the index build cut (documents are truncated at the model's max_length in every index)
        "truncated": _truncation_summary(index),
    }


def encoding_model(index: Index) -> BaseReranker | None:
    """The model that encodes ``index``'s texts: its own, a hybrid's dense part's, none for BM25."""
    if isinstance(index, HybridIndex):
        return next((part.model for part in index.parts.values() if part.model is not None), None)
    return index.model


def _truncation_summary(index: Index) -> str:
    """What truncation cut while ``index`` encoded its documents (``-``: loaded, nothing encoded)."""
    model = encoding_model(index)
    return "-" if model is None else model.truncation_totals.summary(model.max_length)
