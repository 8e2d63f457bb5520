"""``ColBERTRetriever``: a persistent ColBERT index as a LlamaIndex retriever."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from ..core.indexes.colbert import ColBERTIndex, ModelLike
from ..core.text.inputs import check_positive_int
from .index_nodes import index_entries, node_with_score


class ColBERTRetriever(BaseRetriever):
    """Retrieves nodes from a :class:`~rag_retrieval_integrations.core.ColBERTIndex` by ColBERT MaxSim.

    FAISS finds candidates among the indexed token vectors, and the candidates are ranked by their
    exact MaxSim score, the score ``Reranker(..., model_type="colbert")`` gives. Returns
    ``NodeWithScore`` objects, best first: the indexed node itself (stored with LlamaIndex's
    ``node_to_metadata_dict``: its class, metadata, exclusions and relationships come back) with
    the MaxSim score in ``score``. A node is indexed on its text
    (``node.get_content(metadata_mode=MetadataMode.NONE)``).

    Args:
        index: the ColBERT index searched.
        similarity_top_k: how many nodes to return.
        score_threshold: drop nodes whose MaxSim score is below this.
        exhaustive: score every indexed node exactly instead of FAISS's candidates.
        callback_manager, verbose, object_map: LlamaIndex's ``BaseRetriever`` arguments.

    Example:
        .. code-block:: python

            from llama_index.core.query_engine import RetrieverQueryEngine
            from rag_retrieval_integrations.llama_index import ColBERTRetriever

            retriever = ColBERTRetriever.from_nodes(nodes, model="./my-colbert", similarity_top_k=5)
            retriever.save("./my-index")                      # ColBERTRetriever.load("./my-index") later
            query_engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
            query_engine.query("what is a panda?")
    """

    def __init__(
        self,
        index: ColBERTIndex,
        *,
        similarity_top_k: int = 4,
        score_threshold: float | None = None,
        exhaustive: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
        object_map: dict | None = None,
    ) -> None:
        if not isinstance(index, ColBERTIndex):
            raise TypeError(f"index must be a ColBERTIndex, got {type(index).__name__}")
        self.index = index
        self.similarity_top_k = check_positive_int(similarity_top_k, "similarity_top_k")
        self.score_threshold = score_threshold
        self.exhaustive = bool(exhaustive)
        super().__init__(callback_manager=callback_manager, object_map=object_map, verbose=verbose)

    # ---- building -------------------------------------------------------------------------

    @classmethod
    def from_nodes(
        cls,
        nodes: Sequence[BaseNode],
        model: ModelLike,
        *,
        model_kwargs: Mapping[str, Any] | None = None,
        index_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """Index ``nodes`` (or LlamaIndex ``Document``\\ s) with a ColBERT model and retrieve from them.

        ``model`` is a path, hub id or loaded ``Reranker(..., model_type="colbert")``;
        ``model_kwargs`` go to ``Reranker(...)`` when it is a path; ``index_kwargs`` to
        :class:`ColBERTIndex` (``faiss_index``, ``nprobe``, ``max_candidates``, ...); ``kwargs``
        to the retriever (``similarity_top_k``, ``score_threshold``, ...).
        """
        index = ColBERTIndex(model, model_kwargs=model_kwargs, **dict(index_kwargs or {}))
        retriever = cls(index, **kwargs)
        retriever.add_nodes(nodes)
        return retriever

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike[str],
        model: ModelLike | None = None,
        *,
        model_kwargs: Mapping[str, Any] | None = None,
        index_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ColBERTRetriever:
        """A retriever over an index saved with :meth:`save` (the model recorded in it, unless ``model`` is given)."""
        return cls(ColBERTIndex.load(folder, model, model_kwargs=model_kwargs, **dict(index_kwargs or {})), **kwargs)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the index to ``folder``; :meth:`load` reads it back."""
        return self.index.save(folder)

    # ---- changing the index ---------------------------------------------------------------

    def add_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """Encode and index more nodes (a node whose id is indexed replaces it); returns their ids."""
        entries = index_entries(nodes)
        return self.index.add(entries["texts"], ids=entries["ids"], metadatas=entries["metadatas"])

    async def aadd_nodes(self, nodes: Sequence[BaseNode]) -> list[str]:
        """:meth:`add_nodes` in a worker thread, off the event loop."""
        return await asyncio.to_thread(self.add_nodes, nodes)

    def delete(self, node_ids: Sequence[str]) -> None:
        """Remove nodes by id (an unknown id is a ``KeyError`` and nothing is removed)."""
        self.index.delete(node_ids)

    # ---- retrieval ------------------------------------------------------------------------

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.index.search(
            query_bundle.query_str,
            self.similarity_top_k,
            exhaustive=self.exhaustive,
            score_threshold=self.score_threshold,
        )
        return [node_with_score(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return await asyncio.to_thread(self._retrieve, query_bundle)
