"""Mining as a batch job (``mine_hard_negatives(..., engine="ray")``, ``rag-retrieval-train mine --engine ray``).

Three steps, each resumable, in a work folder (default ``<output>.work``, removed once the output is written):

1. the corpus (deduplicated, with ids ``0..n-1``) is encoded by an
   :class:`~rag_retrieval_integrations.batch.EncodeJob` on the engine (MRL and ColBERT models; BM25 and
   hybrid indexes are built in this process) and the index is built from its parts (``add_encoded``);
2. the index is saved; every worker loads it once (``Index.load``: the same exact search);
3. the query lines are mined in shards by :class:`MineJob` with :func:`~rag_retrieval_train.mining_rules.mine_batch`,
   the very function of the single-process path, so the mined lines are the same.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rag_retrieval_integrations.batch import EncodeJob, JobSpec, RowError, add_encoded, run_job
from rag_retrieval_integrations.batch.spec import Worker
from rag_retrieval_integrations.core.fingerprint import file_sha256
from rag_retrieval_integrations.core.indexes.base import Index
from rag_retrieval_integrations.core.models.base import BaseReranker
from rag_retrieval_integrations.core.models.colbert import ColBERTReranker
from rag_retrieval_integrations.core.models.embedding import EmbeddingModel

from .mining_rules import QUERY_BATCH, MinedLine, MiningRules, mine_batch, validate_query_line


@dataclass
class MineJob(JobSpec):
    """Mine a shard of query lines against a saved index (see the module doc)."""

    job: ClassVar[str] = "mine"
    index_class: type[Index]
    index_folder: str
    corpus_size: int
    corpus_sha256: str
    model: str
    retriever: str
    rules: MiningRules
    rescore_model: str | None = None

    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "retriever": self.retriever,
            "corpus_sha256": self.corpus_sha256,
            "rules": {k: v for k, v in vars(self.rules).items() if k != "batch_size"},
            "rescore_model": self.rescore_model,
        }

    def worker(self) -> Worker:
        from rag_retrieval_integrations import Reranker

        index = self.index_class.load(self.index_folder, verify=False)
        reranker = None if self.rescore_model is None else Reranker(self.rescore_model)

        def mine(rows: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
            lines = []
            for number, row in rows:
                try:
                    lines.append((number, validate_query_line(row)))
                except ValueError as err:
                    raise RowError(number, str(err)) from None
            out = []
            for start in range(0, len(lines), QUERY_BATCH):
                batch = lines[start : start + QUERY_BATCH]
                for mined in mine_batch(index, index.model, reranker, batch, self.corpus_size, self.rules):
                    out.append({"line": mined.line_number, "record": mined.record, "negatives": mined.negatives})
            return out

        return mine


def _path_of(model: Any, what: str) -> str:
    if isinstance(model, BaseReranker):
        raise TypeError(
            f"a batch engine loads the {what} in each worker: give its checkpoint path or hub id, not a loaded model"
        )
    return os.fspath(model)


def _write_corpus(path: Path, texts: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": str(i), "text": text}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def mine_with_job(
    data: str | os.PathLike,
    index: Index,
    texts: list[str],
    *,
    model: Any,
    retriever: str,
    rules: MiningRules,
    rescore_model: Any,
    engine: str,
    work_dir: str | os.PathLike,
    workers: int | None,
    rows_per_shard: int,
    show_progress_bar: bool,
) -> list[MinedLine]:
    """Mine every line of ``data`` on ``engine``; ``index`` is empty and gets ``texts`` (ids ``0..n-1``)."""
    model_path = _path_of(model, "model")
    if engine == "ray":  # a missing extra is said before the corpus is written or encoded
        from rag_retrieval_integrations.batch.ray_runner import require_ray

        require_ray()
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.jsonl"
    _write_corpus(corpus, texts)
    options = {"engine": engine, "workers": workers, "show_progress_bar": show_progress_bar}
    if texts and isinstance(index.model, (EmbeddingModel, ColBERTReranker)):
        job = EncodeJob(model_path, batch_size=rules.batch_size)
        encoded = run_job(job, corpus, work / "encoded", rows_per_shard=max(rows_per_shard, 1000), **options)
        add_encoded(index, encoded.output)
    elif texts:
        index.add(texts, ids=[str(i) for i in range(len(texts))])
    saved = work / "index"
    if saved.exists():  # a killed run's: the same documents, built again from the same parts
        shutil.rmtree(saved)
    index.save(saved)
    rescore = None if rescore_model is None else _path_of(rescore_model, "rescore model")
    spec = MineJob(
        type(index),
        str(saved),
        len(texts),
        file_sha256(corpus),
        model_path,
        retriever,
        rules,
        rescore,
    )
    result = run_job(spec, data, work / "mined", rows_per_shard=rows_per_shard, **options)
    return [MinedLine(row["line"], row["record"], row["negatives"]) for row in result.read()]
