"""``RagRetrievalRerank``: any rag-retrieval ranking model as a LlamaIndex node postprocessor."""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.callbacks.base import EventContext
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle

from ..adapter_fields import RerankerWrapper, model_name
from ..core.results import RankResult
from .index_nodes import hiding

RETRIEVAL_SCORE_KEY = "retrieval_score"

dispatcher = get_dispatcher(__name__)


class RagRetrievalRerank(RerankerWrapper, BaseNodePostprocessor):
    """Reranks retrieved nodes with a rag-retrieval model: cross-encoder, LLM reranker or embedding.

    Nodes are scored on ``node.get_content(metadata_mode=MetadataMode.EMBED)``, as LlamaIndex's
    own rerankers do. The result holds new ``NodeWithScore`` objects, best first, with the
    model's score in ``score`` (ties keep the retriever's order); the caller's ``NodeWithScore``
    objects and nodes are left unchanged. Emits ``ReRankStartEvent``/``ReRankEndEvent`` and the
    ``RERANKING`` callback event.

    Fields:
        model: a checkpoint folder, a Hugging Face hub id, or a model loaded with ``Reranker(...)``
            (pass a loaded model to share it between wrappers).
        model_type: the model family when loading from a path (``None``: detected from the checkpoint).
        model_kwargs: options for ``Reranker(...)`` when loading from a path (``device``, ``dtype``, ...).
        top_n: how many nodes to return, best first (``None``: all of them); default 3.
        score_threshold: drop nodes scoring below this, compared with the score as reported
            (after the sigmoid when ``normalize``).
        normalize: report ``sigmoid(raw score)``, in (0, 1), instead of the raw score.
        batch_size: model inputs per forward pass (``None``: the model's own).
        keep_retrieval_score: keep the first-stage score in ``node.metadata["retrieval_score"]``,
            on a copy of the node, left out of its embed and LLM text.

    Example:
        .. code-block:: python

            from rag_retrieval_integrations.llama_index import RagRetrievalRerank

            rerank = RagRetrievalRerank(model="BAAI/bge-reranker-base", top_n=3)
            query_engine = index.as_query_engine(similarity_top_k=10, node_postprocessors=[rerank])
    """

    keep_retrieval_score: bool = Field(
        default=False,
        description=f"Keep the first-stage score in node.metadata[{RETRIEVAL_SCORE_KEY!r}] (on a copy of the node).",
    )

    @classmethod
    def class_name(cls) -> str:
        return "RagRetrievalRerank"

    @dispatcher.span
    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._start(nodes, query_bundle)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:
            return self._end(nodes, self._rank(query, texts), event)

    @dispatcher.span
    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query, texts = self._start(nodes, query_bundle)
        with self.callback_manager.event(CBEventType.RERANKING, payload=self._payload(nodes, query)) as event:
            return self._end(nodes, await self._arank(query, texts), event)

    def _top_n(self, nodes: list[NodeWithScore]) -> int:
        return len(nodes) if self.top_n is None else self.top_n

    def _start(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> tuple[str, list[str]]:
        """Emit ``ReRankStartEvent``; the query and the node texts to score."""
        if query_bundle is None:
            raise ValueError("RagRetrievalRerank needs the query: pass query_bundle= or query_str=")
        dispatcher.event(
            ReRankStartEvent(
                query=query_bundle, nodes=nodes, top_n=self._top_n(nodes), model_name=model_name(self.model)
            )
        )
        return query_bundle.query_str, [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]

    def _payload(self, nodes: list[NodeWithScore], query: str) -> dict[str, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: model_name(self.model),
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self._top_n(nodes),
        }

    def _end(self, nodes: list[NodeWithScore], results: list[RankResult], event: EventContext) -> list[NodeWithScore]:
        """The reranked nodes; ends the callback event and emits ``ReRankEndEvent``."""
        reranked = [NodeWithScore(node=self._node(nodes[r.index]), score=r.score) for r in results]
        event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    def _node(self, scored: NodeWithScore) -> BaseNode:
        """The node to return: the same one, or with ``keep_retrieval_score`` a copy holding the score."""
        node = scored.node
        if not self.keep_retrieval_score:
            return node
        # A copy, so the caller's node (maybe the docstore's own object) is not changed; the score is kept
        # out of the embed/LLM text so that a second reranker or the LLM sees the same content as before.
        return node.model_copy(
            update={
                "metadata": {**node.metadata, RETRIEVAL_SCORE_KEY: scored.score},
                **hiding(node, RETRIEVAL_SCORE_KEY),
            }
        )
