"""The HTTP API as clients see it: the official Cohere SDK, TEI- and OpenAI-shaped requests, errors.

A real uvicorn server on a loopback port serves the tiny models; answers are compared with
the same model called directly.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kit.paths import REPO

pytest.importorskip("fastapi")
cohere = pytest.importorskip("cohere")

import httpx
import numpy as np
from cohere.core.api_error import ApiError
from kit.serving import TIMEOUT, serve
from kit.texts import QUERY, TEXTS
from prometheus_client.parser import text_string_to_metric_families

from rag_retrieval_integrations import RemoteReranker, Reranker
from rag_retrieval_integrations.server import ServerConfig
from rag_retrieval_integrations.server.cli import main, parse_options

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def model(bert_cross_encoder):
    return Reranker(bert_cross_encoder)


@pytest.fixture(scope="module")
def url(model):
    with serve(model, served_model_name="tiny-reranker", api_key=KEY, max_documents=20, max_request_bytes=64_000) as u:
        yield u


def post(url: str, path: str, body, headers=AUTH) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        return httpx.post(
            url + path, content=body, headers={**headers, "content-type": "application/json"}, timeout=TIMEOUT
        )
    return httpx.post(url + path, json=body, headers=headers, timeout=TIMEOUT)


def metric(url: str, name: str, **labels) -> float:
    """The value of one sample of ``GET /metrics``."""
    text = httpx.get(url + "/metrics", timeout=TIMEOUT).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


# ---- the clients' shapes ----------------------------------------------------------------------


def test_cohere_sdk_gets_the_direct_ranking_with_normalized_scores(model, url):
    co = cohere.ClientV2(api_key=KEY, base_url=url, timeout=TIMEOUT)
    got = co.rerank(model="tiny-reranker", query=QUERY, documents=TEXTS, top_n=5)
    want = model.rank(QUERY, TEXTS, top_k=5, normalize=True)
    assert [r.index for r in got.results] == want.indices
    assert [r.relevance_score for r in got.results] == want.scores
    assert all(0.0 < r.relevance_score < 1.0 for r in got.results)


def test_async_cohere_sdk(model, url):
    async def run():
        co = cohere.AsyncClientV2(api_key=KEY, base_url=url, timeout=TIMEOUT)
        return await asyncio.gather(*(co.rerank(model="tiny-reranker", query=q, documents=TEXTS) for q in TEXTS[:4]))

    for q, got in zip(TEXTS[:4], asyncio.run(run())):
        want = model.rank(q, TEXTS, normalize=True)
        assert [r.index for r in got.results] == want.indices
        assert [r.relevance_score for r in got.results] == pytest.approx(want.scores, abs=1e-6)


def test_jina_shape_documents_as_objects_return_documents_and_raw_scores(model, url):
    body = {"model": "tiny-reranker", "query": QUERY, "documents": [{"text": t} for t in TEXTS]}
    got = post(url, "/v1/rerank", {**body, "return_documents": True, "raw_scores": True, "top_n": 3}).json()
    want = model.rank(QUERY, TEXTS, top_k=3)
    assert [r["index"] for r in got["results"]] == want.indices
    assert [r["relevance_score"] for r in got["results"]] == want.scores
    assert [r["document"]["text"] for r in got["results"]] == want.texts
    assert got["model"] == "tiny-reranker" and got["usage"] == {"pairs": len(TEXTS)}
    plain = post(url, "/v1/rerank", body).json()
    assert "document" not in plain["results"][0]  # return_documents defaults to false, as in Cohere
    assert post(url, "/v2/rerank", body).json()["results"] == plain["results"]


def test_tei_rerank(model, url):
    got = post(url, "/rerank", {"query": QUERY, "texts": TEXTS, "return_text": True}).json()
    want = model.rank(QUERY, TEXTS, normalize=True)
    assert [(r["index"], r["score"], r["text"]) for r in got] == [(r.index, r.score, r.text) for r in want]
    raw = post(url, "/rerank", {"query": QUERY, "texts": TEXTS, "raw_scores": True}).json()
    assert [r["score"] for r in raw] == model.rank(QUERY, TEXTS).scores
    assert "text" not in raw[0]


def test_empty_documents_are_an_empty_ranking(url):
    assert post(url, "/v1/rerank", {"query": QUERY, "documents": []}).json()["results"] == []
    assert post(url, "/rerank", {"query": QUERY, "texts": []}).json() == []


def test_fields_the_server_ignores_are_named_in_meta_warnings(url):
    got = post(url, "/v1/rerank", {"query": QUERY, "documents": TEXTS, "max_tokens_per_doc": 512}).json()
    assert got["meta"]["warnings"] == ["ignored field(s) this server does not support: max_tokens_per_doc"]


def test_health_and_metrics(url):
    health = httpx.get(url + "/health", timeout=TIMEOUT).json()  # no API key needed
    assert health["status"] == "ok" and health["model_type"] == "cross-encoder"
    assert "/v1/embeddings" not in health["endpoints"]
    before = metric(url, "rag_retrieval_pairs_total", endpoint="rerank")
    post(url, "/v1/rerank", {"query": QUERY, "documents": TEXTS[:3]})
    assert metric(url, "rag_retrieval_pairs_total", endpoint="rerank") == before + 3
    assert metric(url, "rag_retrieval_requests_total", endpoint="rerank", status="200") >= 1
    assert metric(url, "rag_retrieval_batch_pairs_count") >= 1
    assert metric(url, "rag_retrieval_request_latency_seconds_count", endpoint="rerank") >= 1


def test_openapi_documents_the_request_bodies(url):
    schema = httpx.get(url + "/openapi.json", timeout=TIMEOUT).json()
    body = schema["paths"]["/v1/rerank"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/RerankRequest"}
    rerank = schema["components"]["schemas"]["RerankRequest"]
    assert {"query", "documents", "top_n", "return_documents", "raw_scores"} <= set(rerank["properties"])
    assert "RerankDocument" in schema["components"]["schemas"]
    assert (
        "TEIRerankRequest" in schema["components"]["schemas"] and "EmbeddingsRequest" in schema["components"]["schemas"]
    )


# ---- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, field",
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        ({"documents": TEXTS}, "query"),
        ({"query": 3, "documents": TEXTS}, "query"),
        ({"query": QUERY, "documents": "one string"}, "documents"),
        ({"query": QUERY, "documents": ["ok", 7]}, "documents.1"),
        ({"query": QUERY, "documents": [{"txt": "no text"}]}, "documents.0.text"),
        ({"query": QUERY, "documents": TEXTS, "top_n": -1}, "top_n"),
        ({"query": QUERY, "documents": TEXTS, "top_n": "3"}, "top_n"),
        ({"query": QUERY, "documents": TEXTS, "return_documents": "yes"}, "return_documents"),
        (b'{"query": "\\udcff", "documents": ["a"]}', "query"),  # a lone surrogate: valid JSON, not text
        (b'{"query": "q", "documents": ["a", "\\udcff"]}', "documents"),
        (b'{"query": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "body"),  # nested past Python's recursion limit
    ],
)
def test_malformed_bodies_get_422_naming_the_field_and_the_server_keeps_serving(url, body, field):
    got = post(url, "/v1/rerank", body)
    assert got.status_code == 422, got.text
    assert got.json()["error"]["field"] == field
    assert post(url, "/v1/rerank", {"query": QUERY, "documents": TEXTS}).status_code == 200


def test_too_many_documents_or_bytes_are_413(url):
    got = post(url, "/v1/rerank", {"query": QUERY, "documents": ["a"] * 21})
    assert got.status_code == 413 and "at most 20" in got.json()["error"]["message"]
    assert post(url, "/rerank", {"query": QUERY, "texts": ["a"] * 21}).status_code == 413
    got = post(url, "/v1/rerank", {"query": QUERY, "documents": ["x" * 70_000]})
    assert got.status_code == 413 and got.json()["error"]["type"] == "request_too_large"

    def chunked():  # no Content-Length: the limit holds while the body streams in
        yield b'{"query": "q", "documents": ["'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"]}'

    got = httpx.post(url + "/v1/rerank", content=chunked(), headers=AUTH, timeout=TIMEOUT)
    assert got.status_code == 413


def test_a_client_leaving_mid_body_is_no_server_error(url):
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as raw:
        head = f"POST /v1/rerank HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        raw.sendall((head + "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n").encode() + b'{"query": ')
    deadline = time.monotonic() + TIMEOUT
    while not metric(url, "rag_retrieval_requests_total", endpoint="rerank", status="400"):
        assert time.monotonic() < deadline, "the server never noticed the client leaving"
        time.sleep(0.05)
    assert metric(url, "rag_retrieval_requests_total", endpoint="rerank", status="500") == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}])
def test_a_missing_or_wrong_api_key_is_401(url, headers):
    got = post(url, "/v1/rerank", {"query": QUERY, "documents": TEXTS}, headers=headers)
    assert got.status_code == 401 and got.headers["www-authenticate"] == "Bearer"
    with pytest.raises(ApiError) as err:
        cohere.ClientV2(api_key="wrong", base_url=url, timeout=TIMEOUT).rerank(model="m", query="q", documents=["d"])
    assert err.value.status_code == 401


def test_another_model_name_is_refused_and_nothing_is_loaded(url):
    for name in ["BAAI/bge-reranker-base", "/etc/passwd", "../tiny-reranker"]:
        got = post(url, "/v1/rerank", {"model": name, "query": QUERY, "documents": TEXTS})
        assert got.status_code == 404 and got.json()["error"]["field"] == "model"
        assert "tiny-reranker" in got.json()["error"]["message"]


def test_embeddings_on_a_reranker_is_404(url):
    got = post(url, "/v1/embeddings", {"input": "text"})
    assert got.status_code == 404 and "'cross-encoder'" in got.json()["error"]["message"]


# ---- an embedding model -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder(bi_encoder):
    return Reranker(bi_encoder)


@pytest.fixture(scope="module")
def embed_url(embedder):
    with serve(embedder, served_model_name="tiny-embedder") as u:
        yield u


def test_openai_embeddings_equal_the_models_vectors(embedder, embed_url):
    got = post(embed_url, "/v1/embeddings", {"model": "tiny-embedder", "input": TEXTS[:3]}, headers={}).json()
    assert got["object"] == "list" and got["model"] == "tiny-embedder"
    assert [d["index"] for d in got["data"]] == [0, 1, 2]
    np.testing.assert_allclose([d["embedding"] for d in got["data"]], embedder.encode_documents(TEXTS[:3]), atol=1e-6)
    lengths = [len(ids) for ids in embedder.model.tokenizer(TEXTS[:3])["input_ids"]]
    assert got["usage"] == {"prompt_tokens": sum(lengths), "total_tokens": sum(lengths)}
    query = post(embed_url, "/v1/embeddings", {"input": QUERY, "input_type": "query"}, headers={}).json()
    np.testing.assert_allclose(query["data"][0]["embedding"], embedder.encode_queries([QUERY])[0], atol=1e-6)


def test_embeddings_base64_and_matryoshka_dimensions(embedder, embed_url):
    body = {"input": TEXTS[:2], "encoding_format": "base64", "dimensions": 8}
    got = post(embed_url, "/v1/embeddings", body, headers={}).json()
    vectors = np.stack([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in got["data"]])
    full = embedder.encode_documents(TEXTS[:2])[:, :8]
    np.testing.assert_allclose(vectors, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-6)
    too_many = post(embed_url, "/v1/embeddings", {"input": "x", "dimensions": 10_000}, headers={})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "dimensions"
    tokens = post(embed_url, "/v1/embeddings", {"input": [[1, 2, 3]]}, headers={})
    assert tokens.status_code == 422 and tokens.json()["error"]["field"].startswith("input")


def test_embeddings_of_no_input_and_of_bad_text(embed_url):
    empty = post(embed_url, "/v1/embeddings", {"input": []}, headers={})
    assert empty.status_code == 200 and empty.json()["data"] == []
    bad = post(embed_url, "/v1/embeddings", b'{"input": ["fine", "\\udcff"]}', headers={})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "input" and "input[1]" in bad.text


def test_an_embedding_model_ranks_on_v1_rerank_by_similarity(embedder, embed_url):
    got = post(embed_url, "/v1/rerank", {"query": QUERY, "documents": TEXTS}, headers={}).json()
    want = embedder.rank(QUERY, TEXTS, normalize=True)
    assert [r["index"] for r in got["results"]] == want.indices
    assert [r["relevance_score"] for r in got["results"]] == want.scores


# ---- settings and the command line --------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("max_queue", 0),
        ("max_documents", -1),
        ("batch_wait_ms", -1),
        ("request_timeout_s", 0),
        ("api_key", ""),
        ("api_key", "key\n"),
        ("api_key", "ключ"),
    ],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ServerConfig(served_model_name="m", **{field: value})


def test_cli_options_are_json_or_strings():
    assert parse_options(["max_length=256", "long_doc=split-max", "trust_remote_code=true"]) == {
        "max_length": 256,
        "long_doc": "split-max",
        "trust_remote_code": True,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_options(["max_length"])


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_cli_refuses_a_port_out_of_range_in_one_line(bert_cross_encoder, capsys, port):
    with pytest.raises(SystemExit) as exit_:
        main([str(bert_cross_encoder), "--port", port])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--port: must be a whole number from 0 to 65535" in err
    assert "Traceback" not in err


def test_an_api_key_read_with_its_newline_is_stripped_with_a_warning(monkeypatch, capsys):
    from rag_retrieval_integrations.server.cli import api_key_from_environment

    monkeypatch.setenv("RAG_RETRIEVAL_API_KEY", "secret\n")
    assert api_key_from_environment() == "secret"
    assert "trailing whitespace" in capsys.readouterr().err
    monkeypatch.setenv("RAG_RETRIEVAL_API_KEY", "secret")
    assert api_key_from_environment() == "secret" and capsys.readouterr().err == ""


def test_cli_refuses_a_missing_model_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "nothing-here")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("rag-retrieval-serve: error:")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_cli_serves_a_model(model, bert_cross_encoder):
    port = _free_port()
    root = REPO
    env = {**os.environ, "RAG_RETRIEVAL_API_KEY": KEY, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
    command = [sys.executable, "-m", "rag_retrieval_integrations.server.cli", str(bert_cross_encoder)]
    command += ["--port", str(port), "--option", "max_length=128", "--log-level", "warning"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        got = post(base, "/v1/rerank", {"model": Path(bert_cross_encoder).name, "query": QUERY, "documents": TEXTS})
        want = Reranker(bert_cross_encoder, max_length=128).rank(QUERY, TEXTS, normalize=True)
        assert [r["relevance_score"] for r in got.json()["results"]] == want.scores
        assert post(base, "/v1/rerank", {"query": QUERY, "documents": TEXTS}, headers={}).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_missing_serve_dependency_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("rag_retrieval_integrations.server")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # what an uninstalled package looks like to import
    with pytest.raises(ImportError, match=r"needs fastapi: pip install 'rag-retrieval\[serve\]'"):
        importlib.import_module("rag_retrieval_integrations.server")
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(ImportError, match=r"pip install 'rag-retrieval\[remote\]'"):
        RemoteReranker("http://127.0.0.1:8000")
