"""The main job end to end, offline: fine-tune a reranker on your documents, measure it, plug it in.

On the bundled real text (48 SQuAD v1.1 paragraphs of six Wikipedia articles, 271 questions;
``examples/data/squad_excerpt.json``, CC BY-SA) and the bundled all-MiniLM-L6-v2:

1. split the questions: every paragraph's even-numbered questions train, its odd-numbered ones
   are held out (a team's own questions about its own documents);
2. ``rag-retrieval-train mine``: the base model ranks all paragraphs for each training question,
   and the best-ranked wrong paragraphs become negatives (``train.jsonl``);
3. ``rag-retrieval-eval rerank``: the base model reranks all 48 paragraphs for every held-out
   question (MAP, MRR@10, nDCG@10);
4. ``rag-retrieval-train embedding``: fine-tune it (InfoNCE over in-batch and hard negatives);
5. ``rag-retrieval-eval rerank --compare``: before and after, side by side, on the held-out questions;
6. the fine-tuned model as the reranker of a LangChain ``ContextualCompressionRetriever`` and of
   a LlamaIndex query engine, answering held-out questions (with the source each would answer from:
   no LLM is available offline).

all-MiniLM-L6-v2 is a bi-encoder, so the reranker fine-tuned here is a bi-encoder reranker
(``Reranker(path)`` detects it as ``embedding``). With a cross-encoder or LLM checkpoint the
same chain runs with ``rag-retrieval-train reranker`` in step 4; nothing else changes.

Run it from the repository root with ``make demo`` (or ``python examples/demo.py`` in an
environment with ``pip install -e '.[examples]'``). Outputs go to ``outputs/demo`` (``DEMO_OUT``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything needed is on disk
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from excerpt import load_model_path, load_paragraphs, short, split_questions  # the bundled data and model
from transformers.utils import logging as hf_logging

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("DEMO_OUT", ROOT / "outputs" / "demo"))
HARD_NEGATIVES = 7  # per training question, from the base model's ranking
# a short run that fits the 10-minute budget of `make demo` on 2 CPU cores
TRAINING = {"epochs": 2, "batch_size": 16, "learning_rate": 5e-5, "train_group_size": 2, "max_length": 128, "seed": 0}
SHOWN_QUESTIONS = 3


def step(number: int, text: str) -> float:
    print(f"\n[{number}/6] {text}", flush=True)
    return time.perf_counter()


def done(start: float) -> None:
    print(f"      ({time.perf_counter() - start:.0f}s)", flush=True)


def command_line(tool: str, *args: str) -> list[str]:
    """The installed console script next to this Python, or ``python -m`` where it is missing."""
    script = Path(sys.executable).parent / tool
    if script.exists():
        return [str(script), *args]
    module = {
        "rag-retrieval-train": "rag_retrieval_train",
        "rag-retrieval-eval": "rag_retrieval_integrations.evaluation.cli",
    }
    return [sys.executable, "-m", module[tool], *args]


def run(tool: str, *args: str, names: dict[str, str]) -> None:
    """Print the command as a user would type it (``names``: paths shown as variables), then run
    it; stop the demo if it fails."""
    shown = [tool]
    for arg in args:
        arg = names.get(arg, arg)
        shown.append(os.path.relpath(arg, ROOT) if arg.startswith(str(ROOT)) else arg)
    print("      $ " + " ".join(a if a.startswith("$") else shlex.quote(a) for a in shown), flush=True)
    # the commands' own progress bars (training steps, scoring) stay; loading and dataset bars go
    env = {**os.environ, "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
    result = subprocess.run(command_line(tool, *args), cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(f"demo: `{tool}` failed with exit status {result.returncode}")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def main() -> None:
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    total = time.perf_counter()

    start = step(1, "Loading all-MiniLM-L6-v2 and the bundled SQuAD excerpt; splitting the questions ...")
    base = load_model_path()
    paragraphs = load_paragraphs()
    docs = [p["context"] for p in paragraphs]
    train, held_out = split_questions(paragraphs)
    if OUT.exists():
        shutil.rmtree(OUT)  # a fresh run every time: the trainer would otherwise resume
    OUT.mkdir(parents=True)
    names = {base: "$BASE"}
    print(f"      BASE={base}")
    print(f"      {len(docs)} paragraphs; {len(train)} training questions, {len(held_out)} held-out questions")
    done(start)

    start = step(2, f"Mining {HARD_NEGATIVES} hard negatives per training question with the base model ...")
    queries_file = write_jsonl(OUT / "train_queries.jsonl", [{"query": q, "pos": [docs[gold]]} for q, gold in train])
    corpus_file = write_jsonl(OUT / "corpus.jsonl", [{"text": d} for d in docs])
    train_file = OUT / "train.jsonl"
    # the best-ranked wrong paragraphs (positives are never negatives and not counted in the ranks)
    run(
        "rag-retrieval-train",
        "mine",
        "--data",
        str(queries_file),
        "--corpus",
        str(corpus_file),
        "--model",
        base,
        "--output",
        str(train_file),
        "--num-negatives",
        str(HARD_NEGATIVES),
        "--no-progress",
        names=names,
    )
    eval_rows = [
        {"query": q, "candidates": [{"content": d, "label": int(i == gold)} for i, d in enumerate(docs)]}
        for q, gold in held_out
    ]
    eval_file = write_jsonl(OUT / "held_out.jsonl", eval_rows)
    print(
        f"      wrote {eval_file.name}: {len(eval_rows)} held-out questions, each with all {len(docs)} "
        "paragraphs as candidates (label 1: the paragraph it was asked about)"
    )
    done(start)

    start = step(3, "Before fine-tuning: the base model as the reranker of the held-out questions ...")
    run(
        "rag-retrieval-eval",
        "rerank",
        "--data",
        str(eval_file),
        "--model",
        base,
        "--model-type",
        "embedding",
        "--quiet",
        names=names,
    )
    done(start)

    finetuned = OUT / "finetuned"
    start = step(4, f"Fine-tuning it on the {len(train)} training questions (InfoNCE, in-batch and hard negatives) ...")
    flags = [f"--{key}={value}" for key, value in TRAINING.items()]
    run(
        "rag-retrieval-train",
        "embedding",
        "--model_name_or_path",
        base,
        "--train_data",
        str(train_file),
        "--output_dir",
        str(finetuned),
        *flags,
        "--report_to=[]",
        "--logging_steps=5",
        names=names,
    )
    print(
        f"      checkpoint: {finetuned.relative_to(ROOT) if finetuned.is_relative_to(ROOT) else finetuned} "
        "(a sentence-transformers folder, with rag_retrieval.json and loss_curve.png)"
    )
    done(start)

    start = step(5, "After: the base and the fine-tuned model on the same held-out questions ...")
    run(
        "rag-retrieval-eval",
        "rerank",
        "--data",
        str(eval_file),
        "--model",
        base,
        "--compare",
        str(finetuned),
        "--model-type",
        "embedding",
        "--output-dir",
        str(OUT / "eval"),
        "--quiet",
        names=names,
    )
    scores = {row["model"]: row for row in json.loads((OUT / "eval" / "eval_rerank.json").read_text())}
    before, after = scores[base]["MAP"], scores[str(finetuned)]["MAP"]
    print(
        f"      MAP {before:.4f} -> {after:.4f} ({after - before:+.4f}); table in "
        f"{(OUT / 'eval' / 'eval_rerank.md').name}"
    )
    done(start)

    start = step(6, "Answering held-out questions with the fine-tuned reranker in LangChain and LlamaIndex ...")
    answer_with_langchain(base, str(finetuned), paragraphs, held_out)
    answer_with_llama_index(base, str(finetuned), paragraphs, held_out)
    done(start)
    print(f"\nDone in {time.perf_counter() - total:.0f}s. Outputs: {OUT}")


def shown_questions(paragraphs: list[dict[str, Any]], held_out: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The first held-out question of each of the first articles: a fixed rule, not a picked set."""
    picked: dict[str, tuple[str, int]] = {}
    for question, gold in held_out:
        picked.setdefault(paragraphs[gold]["title"], (question, gold))
    return list(picked.values())[:SHOWN_QUESTIONS]


def answer_of(paragraphs: list[dict[str, Any]], question: str, gold: int) -> str:
    return next(q["answer"] for q in paragraphs[gold]["questions"] if q["question"] == question)


def answer_with_langchain(
    base: str, finetuned: str, paragraphs: list[dict[str, Any]], held_out: list[tuple[str, int]]
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    from rag_retrieval_integrations.langchain import RagRetrievalEmbeddings, RagRetrievalReranker

    print(
        "\n  LangChain: InMemoryVectorStore (base model, 64 of 384 dims, 8 hits) -> ContextualCompressionRetriever("
        "RagRetrievalReranker(fine-tuned), 3 kept)"
    )
    documents = [Document(p["context"], id=str(i), metadata={"title": p["title"]}) for i, p in enumerate(paragraphs)]
    embeddings = RagRetrievalEmbeddings(model=base, truncate_dim=64, model_kwargs={"device": "cpu"})
    first_stage = InMemoryVectorStore.from_documents(documents, embeddings).as_retriever(search_kwargs={"k": 8})
    pipelines = {
        name: ContextualCompressionRetriever(
            base_compressor=RagRetrievalReranker(model=path, top_n=3, model_kwargs={"device": "cpu"}),
            base_retriever=first_stage,
        )
        for name, path in (("base", base), ("fine-tuned", finetuned))
    }
    for question, gold in shown_questions(paragraphs, held_out):
        print(f"\n    Q: {question}   (answer: {answer_of(paragraphs, question, gold)!r})")
        for rank, doc in enumerate(pipelines["fine-tuned"].invoke(question), start=1):
            mark = "\u2713" if doc.id == str(gold) else " "
            print(
                f"     {mark} {rank}. {doc.metadata['relevance_score']:.3f}  [{doc.metadata['title']}] "
                f"{short(doc.page_content, 70)}"
            )
    # the whole held-out set through both pipelines: what fine-tuning changed for a user
    questions = [q for q, _ in held_out]
    print(f"\n    accuracy@1 of the pipeline on all {len(held_out)} held-out questions:", end=" ", flush=True)
    for name, pipeline in pipelines.items():
        top = [docs[0].id if docs else None for docs in pipeline.batch(questions)]
        accuracy = sum(t == str(g) for t, (_, g) in zip(top, held_out)) / len(held_out)
        print(f"{name} reranker {accuracy:.3f}", end="; " if name == "base" else "\n", flush=True)


def answer_with_llama_index(
    base: str, finetuned: str, paragraphs: list[dict[str, Any]], held_out: list[tuple[str, int]]
) -> None:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.llms import MockLLM
    from llama_index.core.schema import TextNode

    from rag_retrieval_integrations.llama_index import RagRetrievalEmbedding, RagRetrievalRerank

    # No LLM is available offline: MockLLM stands in for one (its "answer" is filler), and the demo
    # prints the sources the engine would answer from; with a real LLM, pass it as llm=.
    print(
        "\n  LlamaIndex: VectorStoreIndex (base model, 64 dims, 8 hits) -> query engine with "
        "RagRetrievalRerank(fine-tuned, 3 kept)"
    )
    nodes = [TextNode(id_=str(i), text=p["context"], metadata={"title": p["title"]}) for i, p in enumerate(paragraphs)]
    embed_model = RagRetrievalEmbedding(model=base, truncate_dim=64, model_kwargs={"device": "cpu"})
    index = VectorStoreIndex(nodes, embed_model=embed_model)
    rerank = RagRetrievalRerank(model=finetuned, top_n=3, model_kwargs={"device": "cpu"})
    engine = index.as_query_engine(similarity_top_k=8, node_postprocessors=[rerank], llm=MockLLM())
    for question, gold in shown_questions(paragraphs, held_out):
        response = engine.query(question)
        top = response.source_nodes[0].node
        mark = "\u2713" if top.node_id == str(gold) else "\u2717"
        answer = answer_of(paragraphs, question, gold)
        found = "contains" if answer.lower() in top.get_content().lower() else "does not contain"
        print(
            f"\n    Q: {question}\n     {mark} top source [{top.metadata['title']}] "
            f"(score {response.source_nodes[0].score:.3f}) {found} the answer {answer!r}:\n"
            f"       {short(top.get_content(), 110)}"
        )


if __name__ == "__main__":
    main()
