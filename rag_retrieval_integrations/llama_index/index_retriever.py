"""``IndexRetriever``: any of our persistent indexes (an :class:`~rag_retrieval_integrations.core.Index`)
as a LlamaIndex retriever: nodes in and out (stored whole, see ``index_nodes.py``), add/delete,
save/load (``IndexRetrieverMixin``), sync and async retrieval. ``ColBERTRetriever`` and ``MRLRetriever`` only name their index
class, its search options and how a node is encoded."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from ..core.indexes.base import Index
from ..core.indexes.documents import IndexHit
from ..core.indexes.retriever import IndexRetrieverMixin
from ..core.options import check_positive_int, check_score_threshold
from .index_nodes import check_nodes, embed_texts, index_entries, node_with_score

_R = TypeVar("_R", bound="IndexRetriever")


class IndexRetriever(IndexRetrieverMixin, BaseRetriever):
    """A LlamaIndex retriever over one of our indexes (``self.index``): ``NodeWithScore`` objects,
    best first, each the indexed node itself (its class, metadata, exclusions and relationships) with
    the index's score.

    Args:
        index: the index searched (an instance of the retriever's ``index_class``).
        similarity_top_k: how many nodes to return.
        score_threshold: drop nodes scoring below this.
        callback_manager, verbose, object_map: LlamaIndex's ``BaseRetriever`` arguments.
    """

    def __init__(
        self,
        index: Index,
        *,
        similarity_top_k: int = 4,
        score_threshold: float | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        object_map: dict | None = None,
    ) -> None:
        if not isinstance(index, self.index_classes()):
            names = " or ".join(c.__name__ for c in self.index_classes())
            raise TypeError(f"index must be a {names}, got {type(index).__name__}")
        self.index = index
        self.similarity_top_k = check_positive_int(similarity_top_k, "similarity_top_k")
        self.score_threshold = check_score_threshold(score_threshold)
        super().__init__(callback_manager=callback_manager, object_map=object_map, verbose=verbose)

    def _search_options(self) -> dict[str, Any]:
        """The index's own search options (``exhaustive``, ``shortlist_factor``...) from the retriever's settings."""
        return {}

    def _search(self, query_bundle: QueryBundle) -> list[IndexHit]:
        return self.index.search(
            query_bundle.query_str,
            self.similarity_top_k,
            score_threshold=self.score_threshold,
            **self._search_options(),
        )

    @classmethod
    def from_nodes(cls: type[_R], nodes: Sequence[BaseNode], model: Any = None, **kwargs: Any) -> _R:
        """Index ``nodes`` (or LlamaIndex ``Document``\\ s) with a new index of ``model`` (a path, hub id or
        loaded ``Reranker``; none for BM25 and hybrid retrievers) and retrieve from them.

        ``kwargs`` are the index's settings (its constructor's: ``nprobe``, ``search_dim``,
        ``shortlist_factor``...; ``model_kwargs`` for ``Reranker(...)`` when ``model`` is a path; or a dict
        ``index_kwargs``), then the retriever's (``similarity_top_k``, ``score_threshold``...).
        """
        retriever = cls(index=cls._new_index(model, kwargs), **kwargs)
        retriever.add_nodes(nodes)
        return retriever

    # ---- changing the index ---------------------------------------------------------------

    def add_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Encode and index nodes under their ``node_id`` (a node whose id is indexed replaces it); returns the ids."""
        nodes = check_nodes(nodes)
        if not nodes:
            return []
        entries = index_entries(nodes)
        vectors = self.index.encode_documents(embed_texts(nodes))
        return self.index.add_vectors(entries["texts"], vectors, ids=entries["ids"], metadatas=entries["metadatas"])

    async def aadd_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """:meth:`add_nodes` in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.add_nodes, nodes)

    def delete(self, node_ids: Sequence[str]) -> None:
        """Remove nodes by id (an unknown id is a ``KeyError`` and nothing is removed)."""
        self.index.delete(node_ids)

    # ---- retrieval ------------------------------------------------------------------------

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [node_with_score(hit) for hit in self._search(query_bundle)]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
