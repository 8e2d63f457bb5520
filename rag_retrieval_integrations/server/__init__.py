"""Serve any rag-retrieval model over HTTP: ``rag-retrieval-serve MODEL``.

The rerank API of Cohere v2 / Jina (``POST /v1/rerank``), Text Embeddings Inference's
``POST /rerank``, OpenAI's ``POST /v1/embeddings`` for embedding models, ``GET /health`` and
``GET /metrics`` (Prometheus), with requests micro-batched into ``score_pairs`` passes.
Needs ``pip install 'rag-retrieval[serve]'`` (FastAPI, uvicorn, httpx, prometheus-client).
"""

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"rag_retrieval_integrations.server needs {err.name}: pip install 'rag-retrieval[serve]'"
    ) from err

from .app import create_app
from .background import running_server
from .batcher import MicroBatcher, QueueFullError
from .limits import ServerConfig

__all__ = ["MicroBatcher", "QueueFullError", "ServerConfig", "create_app", "running_server"]
