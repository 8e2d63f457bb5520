"""Corpus-scale batch jobs: encode a corpus, score (query, document) pairs with any ``Reranker``, on
sharded JSONL or Parquet, resumable shard by shard; in this process or on Ray Data (``engine="ray"``,
``pip install 'rag-retrieval[ray]'``), with equal outputs. See docs/batch.md."""

from .engine import ENGINES, JobResult, run_job
from .jobs import EncodeJob, ScoreJob, add_encoded, query_documents, with_scores
from .shards import read_manifest, read_output
from .spec import JobSpec, RowError

__all__ = [
    "ENGINES",
    "EncodeJob",
    "JobResult",
    "JobSpec",
    "RowError",
    "ScoreJob",
    "add_encoded",
    "query_documents",
    "read_manifest",
    "read_output",
    "run_job",
    "with_scores",
]
