"""Prometheus metrics of one server app, in a registry of its own.

A registry per app (not prometheus-client's global one) keeps two apps in one process (tests,
a benchmark comparing settings) from sharing or double-registering counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# seconds: a tiny model answers in a few ms on loopback, an LLM reranker in seconds
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PAIR_BUCKETS = (1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
REQUEST_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    """The counters and histograms ``GET /metrics`` exposes (names start with ``rag_retrieval_``).

    Attributes:
        requests: requests answered, by endpoint and HTTP status.
        pairs: (query, document) pairs scored, and texts embedded, by endpoint.
        latency: seconds from a request's arrival to its answer, by endpoint.
        queue_wait: seconds a request waited before its batch started.
        batch_pairs, batch_requests: pairs and requests per ``score_pairs`` pass.
        queue_depth: requests waiting now.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "rag_retrieval_requests", "Requests answered", ["endpoint", "status"], registry=r
        )  # exposed as rag_retrieval_requests_total
        self.pairs = Counter("rag_retrieval_pairs", "Pairs scored or texts embedded", ["endpoint"], registry=r)
        self.latency = Histogram(
            "rag_retrieval_request_latency_seconds",
            "Request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "rag_retrieval_queue_wait_seconds", "Time waiting for a batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_pairs = Histogram(
            "rag_retrieval_batch_pairs", "Pairs per score_pairs pass", buckets=PAIR_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "rag_retrieval_batch_requests", "Requests per score_pairs pass", buckets=REQUEST_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("rag_retrieval_queue_depth", "Requests waiting to be scored", registry=r)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
