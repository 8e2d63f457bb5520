"""One face for the LangChain and LlamaIndex retrievers over our indexes (``ColBERTRetriever``,
``MRLRetriever``, ``BM25Retriever``, ``HybridRetriever``), so that a retriever test runs once per framework and says the same of both.

Each side builds a retriever from texts, ids and metadata, and turns what the framework returns
(``Document`` with the score in its metadata; ``NodeWithScore``) into :class:`Found` rows. A
LlamaIndex node's metadata is excluded from its embedded content here, so both frameworks index
the same texts and a test can compare them with ``model.rank``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("colbert", "mrl")
RETRIEVERS = {
    "colbert": "ColBERTRetriever",
    "mrl": "MRLRetriever",
    "bm25": "BM25Retriever",
    "hybrid": "HybridRetriever",
}
"""Each index kind's retriever class, the same name in both frameworks (BM25 and hybrid take no model)."""
FRAMEWORKS = ("langchain", "llama_index")


@dataclass(frozen=True)
class Found:
    """One retrieved document as a test compares it, whatever the framework."""

    id: str
    text: str
    metadata: dict[str, Any]
    score: float


class LangChainSide:
    """LangChain's retrievers: ``from_documents``, ``invoke``/``ainvoke``, ``k``, scores in metadata."""

    name = "langchain"

    def __init__(self, kind: str) -> None:
        from rag_retrieval_integrations import langchain

        self.cls = getattr(langchain, RETRIEVERS[kind])

    def build(
        self, model: Any, texts: Sequence[str], ids: Sequence[str], metadatas: Sequence[Mapping], k: int, **options
    ):
        from langchain_core.documents import Document

        docs = [Document(page_content=t, id=i, metadata=dict(m)) for t, i, m in zip(texts, ids, metadatas)]
        return self.cls.from_documents(docs, model, k=k, **options)

    def over(self, index: Any, k: int):
        return self.cls(index=index, k=k)

    def load(self, folder: Path, model: Any, k: int):
        return self.cls.load(folder, model, k=k)

    def add(self, retriever: Any, texts: Sequence[str], ids: Sequence[str], metadatas: Sequence[Mapping]) -> list[str]:
        from langchain_core.documents import Document

        return retriever.add_documents(
            [Document(page_content=t, id=i, metadata=dict(m)) for t, i, m in zip(texts, ids, metadatas)]
        )

    def retrieve(self, retriever: Any, query: str) -> list[Found]:
        return self._found(retriever, retriever.invoke(query))

    def aretrieve(self, retriever: Any, query: str) -> list[Found]:
        return self._found(retriever, asyncio.run(retriever.ainvoke(query)))

    @staticmethod
    def _found(retriever: Any, docs: list) -> list[Found]:
        key = retriever.score_key
        return [
            Found(d.id, d.page_content, {k: v for k, v in d.metadata.items() if k != key}, d.metadata[key])
            for d in docs
        ]


class LlamaIndexSide:
    """LlamaIndex's retrievers: ``from_nodes``, ``retrieve``/``aretrieve``, ``similarity_top_k``, ``NodeWithScore``."""

    name = "llama_index"

    def __init__(self, kind: str) -> None:
        from rag_retrieval_integrations import llama_index

        self.cls = getattr(llama_index, RETRIEVERS[kind])

    @staticmethod
    def nodes(texts: Sequence[str], ids: Sequence[str], metadatas: Sequence[Mapping]) -> list:
        from llama_index.core.schema import TextNode

        return [
            TextNode(id_=i, text=t, metadata=dict(m), excluded_embed_metadata_keys=list(m))
            for t, i, m in zip(texts, ids, metadatas)
        ]

    def build(
        self, model: Any, texts: Sequence[str], ids: Sequence[str], metadatas: Sequence[Mapping], k: int, **options
    ):
        return self.cls.from_nodes(self.nodes(texts, ids, metadatas), model, similarity_top_k=k, **options)

    def over(self, index: Any, k: int):
        return self.cls(index=index, similarity_top_k=k)

    def load(self, folder: Path, model: Any, k: int):
        return self.cls.load(folder, model, similarity_top_k=k)

    def add(self, retriever: Any, texts: Sequence[str], ids: Sequence[str], metadatas: Sequence[Mapping]) -> list[str]:
        return retriever.add_nodes(self.nodes(texts, ids, metadatas))

    def retrieve(self, retriever: Any, query: str) -> list[Found]:
        return self._found(retriever.retrieve(query))

    def aretrieve(self, retriever: Any, query: str) -> list[Found]:
        return self._found(asyncio.run(retriever.aretrieve(query)))

    @staticmethod
    def _found(nodes: list) -> list[Found]:
        from llama_index.core.schema import MetadataMode

        return [
            Found(n.node.node_id, n.node.get_content(MetadataMode.NONE), dict(n.node.metadata), n.score) for n in nodes
        ]


def side(framework: str, kind: str) -> LangChainSide | LlamaIndexSide:
    """The face of ``framework``'s retriever over the ``kind`` index."""
    return {"langchain": LangChainSide, "llama_index": LlamaIndexSide}[framework](kind)
