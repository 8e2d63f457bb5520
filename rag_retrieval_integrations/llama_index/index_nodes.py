"""LlamaIndex nodes into and out of our persistent indexes (``ColBERTIndex``, ``MRLIndex``).

A node is encoded on its ``MetadataMode.EMBED`` content, as LlamaIndex's ``VectorStoreIndex``
embeds it and as ``RagRetrievalRerank`` scores it, and stored whole, through LlamaIndex's own
``node_to_metadata_dict`` (its class, metadata, exclusions and relationships), next to its plain
text; a search hit is turned back into that node with ``metadata_dict_to_node``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from ..core.indexes.documents import IndexHit


def check_nodes(nodes: Sequence[BaseNode]) -> list[BaseNode]:
    if isinstance(nodes, (str, BaseNode)) or not isinstance(nodes, Sequence):
        raise TypeError(f"nodes must be a list of LlamaIndex nodes, got {type(nodes).__name__}")
    for i, node in enumerate(nodes):
        if not isinstance(node, BaseNode):
            raise TypeError(f"nodes[{i}] must be a LlamaIndex node (TextNode, Document...), got {type(node).__name__}")
    return list(nodes)


def embed_texts(nodes: Sequence[BaseNode]) -> list[str]:
    """What a node is encoded on: its ``MetadataMode.EMBED`` content (its text, with the metadata
    not excluded from embedding), as ``VectorStoreIndex`` does."""
    return [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]


def index_entries(nodes: Sequence[BaseNode]) -> dict[str, Any]:
    """``add_vectors`` arguments for ``nodes`` but the vectors: their plain text (what a hit
    returns), ``node_id`` and stored node dict."""
    nodes = check_nodes(nodes)
    return {
        "texts": [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes],
        "ids": [n.node_id for n in nodes],
        "metadatas": [node_to_metadata_dict(n, remove_text=True) for n in nodes],
    }


def node_with_score(hit: IndexHit) -> NodeWithScore:
    return NodeWithScore(node=metadata_dict_to_node(hit.metadata, text=hit.text), score=hit.score)


def hiding(node: BaseNode, key: str) -> dict[str, list[str]]:
    """``model_copy`` updates that keep metadata ``key`` out of the node's embed and LLM text."""
    return {
        name: keys if key in keys else [*keys, key]
        for name, keys in (
            ("excluded_embed_metadata_keys", node.excluded_embed_metadata_keys),
            ("excluded_llm_metadata_keys", node.excluded_llm_metadata_keys),
        )
    }
