"""Rerank a LlamaIndex query engine's sources with rag-retrieval, offline.

The pipeline, on the 48 SQuAD paragraphs bundled in ``examples/data/squad_excerpt.json``:

1. a ``VectorStoreIndex`` of the paragraphs, one node each, embedded by ``RagRetrievalEmbedding``
   with 64 of all-MiniLM-L6-v2's 384 dimensions (``truncate_dim``): a small, cheap first stage;
2. a query engine that retrieves the 8 best nodes, reranks them with ``RagRetrievalRerank``
   (``keep_retrieval_score=True`` keeps the first-stage score in the node's metadata) and
   answers from the 3 best with LlamaIndex's ``MockLLM`` (no LLM is available offline; it only
   echoes the prompt, so the example prints the sources, not the answer);
3. for four questions, the reranked sources with both scores.

No cross-encoder or LLM reranker is available offline, so the reranker here is the same
all-MiniLM-L6-v2 with all its dimensions, ``Reranker(path, model_type="embedding")``. With a
real reranker, pass its path or hub id instead (``model="BAAI/bge-reranker-base"``); nothing
else changes. See ``langchain_rag.py`` for what the reranker buys on all 271 questions.

Run it from the repository root: ``python examples/llamaindex_rag.py``
(needs ``pip install -e '.[examples]'``).
"""

from __future__ import annotations

import sys
import time

from excerpt import load_model_path, load_paragraphs, short  # examples/excerpt.py: the bundled data and model
from transformers.utils import logging as hf_logging

try:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import TextNode
except ImportError:
    sys.exit("This example needs LlamaIndex; install it with:  pip install -e '.[examples]'")

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.llama_index import RagRetrievalEmbedding, RagRetrievalRerank


def main() -> None:
    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    model_path = load_model_path()
    paragraphs = load_paragraphs()
    nodes = [TextNode(id_=p["id"], text=p["context"], metadata={"title": p["title"]}) for p in paragraphs]

    # Everything is passed explicitly, so LlamaIndex never falls back to its OpenAI defaults.
    embed_model = RagRetrievalEmbedding(model=model_path, truncate_dim=64, model_kwargs={"device": "cpu"})
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    rerank = RagRetrievalRerank(
        model=Reranker(model_path, model_type="embedding", device="cpu"), top_n=3, keep_retrieval_score=True
    )
    query_engine = index.as_query_engine(similarity_top_k=8, node_postprocessors=[rerank], llm=MockLLM())
    print(f"{len(nodes)} paragraphs indexed, models loaded: {time.perf_counter() - start:.1f}s\n")

    # four articles, the first question about each one's second paragraph
    examples = [(p["questions"][0]["question"], p["id"]) for p in paragraphs if p["id"].endswith("-1")][:4]
    for question, gold in examples:
        response = query_engine.query(question)
        print(f"Q: {question}")
        for rank, source in enumerate(response.source_nodes, start=1):
            node = source.node
            mark = "\u2713" if node.node_id == gold else " "
            print(
                f"  {mark} {rank}. {source.score:.3f}  (retrieval score {node.metadata['retrieval_score']:.3f})"
                f"  [{node.metadata['title']}] {short(node.get_content(), 60)}"
            )
        print()

    print("(\u2713 = the paragraph the question was written about)")


if __name__ == "__main__":
    main()
