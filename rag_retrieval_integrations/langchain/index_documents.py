"""LangChain documents into and out of our persistent indexes (``ColBERTIndex``, ``MRLIndex``), and
the check every LangChain class here makes of the documents it is given (the mirror of
``llama_index/index_nodes.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.documents import Document


def check_documents(documents: Sequence[Document]) -> list[Document]:
    if isinstance(documents, (str, Document)) or not isinstance(documents, Sequence):
        raise TypeError(f"documents must be a list of Documents, got {type(documents).__name__}")
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise TypeError(f"documents[{i}] must be a langchain_core Document, got {type(doc).__name__}: {doc!r:.80}")
    return list(documents)


def unpack_documents(
    documents: Sequence[Document], ids: Sequence[str] | None
) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Texts, ids and metadata of LangChain documents; ``ids`` (if given) override the documents'
    own, and a document without an id gets a new UUID."""
    documents = check_documents(documents)
    if ids is None:
        ids = [str(doc.id) if doc.id else uuid.uuid4().hex for doc in documents]
    return [doc.page_content for doc in documents], list(ids), [dict(doc.metadata) for doc in documents]
