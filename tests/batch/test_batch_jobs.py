"""The batch jobs (encode, score) on both engines: outputs equal to the core's single-process calls, resumption
by shard after a kill, and the errors a user meets. The Ray tests share one local 2-CPU cluster (``ray_cluster``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from kit import checkpoints
from kit import colbert as tc

from rag_retrieval_integrations import Reranker
from rag_retrieval_integrations.batch import EncodeJob, ScoreJob, add_encoded, read_output, run_job
from rag_retrieval_integrations.core import ColBERTIndex, MRLIndex
from rag_retrieval_integrations.data_files import DataFormatError

TEXTS = list(dict.fromkeys(checkpoints.CORPUS))


def _score_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        docs = [TEXTS[(i + j) % len(TEXTS)] for j in range(3)]
        if i % 3 == 0:
            rows.append({"query": TEXTS[i % len(TEXTS)][:20], "document": docs[0], "id": i})
        elif i % 3 == 1:
            rows.append({"query": TEXTS[i % len(TEXTS)][:20], "documents": docs})
        else:
            rows.append({"query": TEXTS[i % len(TEXTS)][:20], "hits": [{"content": d} for d in docs]})
    return rows


def _write_jsonl(path: Path, rows: list[dict], blank_every: int = 0) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for i, row in enumerate(rows):
            handle.write(json.dumps(row) + "\n")
            if blank_every and i % blank_every == 0:
                handle.write("\n")  # blank lines are not rows
    return path


def _docs(row: dict) -> list[str]:
    if "document" in row:
        return [row["document"]]
    return row.get("documents") or [h["content"] for h in row["hits"]]


def _scores(row: dict) -> list[float]:
    return [row["score"]] if "score" in row else row["scores"]


def test_score_job_equals_compute_score(bert_cross_encoder, tmp_path):
    rows = _score_rows(11)
    data = _write_jsonl(tmp_path / "pairs.jsonl", rows, blank_every=4)
    result = run_job(ScoreJob(str(bert_cross_encoder), batch_size=4), data, tmp_path / "out", rows_per_shard=3)
    assert (result.shards, result.ran, result.rows) == (4, [0, 1, 2, 3], 11)
    out = list(result.read())
    reranker = Reranker(bert_cross_encoder)
    expected = reranker.compute_score([(r["query"], d) for r in rows for d in _docs(r)])
    got = [s for row in out for s in _scores(row)]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # the input rows come back in order, with their own fields
    assert [r["query"] for r in out] == [r["query"] for r in rows]
    assert out[0]["id"] == 0 and "score" in out[0] and "scores" in out[1]


def test_a_listwise_model_scores_each_row_as_its_own_list(decoder_llm, tmp_path):
    """Two rows of the same query in one shard are two lists: a listwise score depends on its list."""
    query = TEXTS[0][:20]
    rows = [{"query": query, "documents": TEXTS[:3]}, {"query": query, "documents": TEXTS[3:5]}]
    data = _write_jsonl(tmp_path / "pairs.jsonl", rows)
    options = {"method": "first", "window_size": 3}
    job = ScoreJob(str(decoder_llm), model_type="llm-listwise", model_options=options)
    got = [row["scores"] for row in run_job(job, data, tmp_path / "out", show_progress_bar=False).read()]
    listwise = Reranker(decoder_llm, model_type="llm-listwise", **options)
    assert got == [listwise.compute_score([(query, d) for d in row["documents"]]) for row in rows]
    assert sorted(got[1]) == [0.5, 1.0]  # reciprocal ranks within a list of two, not of five


def test_ray_engine_writes_what_the_local_engine_writes(ray_cluster, bert_cross_encoder, tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", _score_rows(12))
    job = ScoreJob(str(bert_cross_encoder), batch_size=4)
    local = list(run_job(job, data, tmp_path / "local", rows_per_shard=3, show_progress_bar=False).read())
    result = run_job(job, data, tmp_path / "ray", engine="ray", workers=2, rows_per_shard=3, output_format="parquet")
    assert sorted(p.name for p in (tmp_path / "ray").glob("part-*")) == [f"part-0000{i}.parquet" for i in range(4)]
    remote = list(result.read())
    assert [r["query"] for r in remote] == [r["query"] for r in local]
    np.testing.assert_allclose(
        [s for r in remote for s in _scores(r)], [s for r in local for s in _scores(r)], atol=1e-5
    )


def test_a_killed_ray_job_resumes_without_redoing_finished_shards(ray_cluster, bert_cross_encoder, tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", _score_rows(160))
    out = tmp_path / "job"
    driver = (
        "import sys; from rag_retrieval_integrations.batch import ScoreJob, run_job; "
        "run_job(ScoreJob(sys.argv[1], batch_size=4), sys.argv[2], sys.argv[3], engine='ray', workers=2, "
        "rows_per_shard=1, show_progress_bar=False)"
    )
    env = {**os.environ, "RAY_ADDRESS": ray_cluster}
    proc = subprocess.Popen([sys.executable, "-c", driver, str(bert_cross_encoder), str(data), str(out)], env=env)
    deadline = time.monotonic() + 240
    while not list(out.glob("part-*.jsonl")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(1.0)  # the cluster stops the dead driver's actors; a shard in flight may still land whole
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("part-*.jsonl")}
    assert 0 < len(before) < 160, f"the kill was not mid-way: {len(before)} of 160 shards were written"
    assert not list(out.glob(".part-*")) or all(p.name.endswith(".tmp") for p in out.glob(".part-*"))
    job = ScoreJob(str(bert_cross_encoder), batch_size=4)
    result = run_job(job, data, out, engine="ray", workers=2, rows_per_shard=1, show_progress_bar=False)
    finished_before = {int(name[5:10]) for name in before}
    assert finished_before.isdisjoint(result.ran) and len(result.ran) < 160
    for name, stamp in before.items():
        path = out / name
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{name} was written again"
    resumed = [s for r in result.read() for s in _scores(r)]
    reference = run_job(job, data, tmp_path / "whole", rows_per_shard=40, show_progress_bar=False)
    np.testing.assert_allclose(resumed, [s for r in reference.read() for s in _scores(r)], atol=1e-5)


def test_a_local_job_resumes_only_the_missing_shards(bert_cross_encoder, tmp_path):
    data = _write_jsonl(tmp_path / "pairs.jsonl", _score_rows(8))
    job = ScoreJob(str(bert_cross_encoder))
    first = run_job(job, data, tmp_path / "out", rows_per_shard=2, show_progress_bar=False)
    expected = list(first.read())
    parts = sorted((tmp_path / "out").glob("part-*"))
    kept = {p.name: p.stat().st_mtime_ns for p in parts[::2]}
    for part in parts[1::2]:
        part.unlink()
    again = run_job(job, data, tmp_path / "out", rows_per_shard=2, show_progress_bar=False)
    assert again.ran == [1, 3]
    assert {name: (tmp_path / "out" / name).stat().st_mtime_ns for name in kept} == kept
    assert list(again.read()) == expected
    assert run_job(job, data, tmp_path / "out", rows_per_shard=2).ran == []  # finished: nothing to do


def test_encode_job_builds_the_index_that_add_builds(bi_encoder, tmp_path):
    rows = [{"id": f"d{i}", "text": t, "metadata": {"n": i}} for i, t in enumerate(TEXTS)]
    data = _write_jsonl(tmp_path / "corpus.jsonl", rows)
    result = run_job(EncodeJob(str(bi_encoder)), data, tmp_path / "enc", rows_per_shard=5, output_format="parquet")
    import pyarrow as pa
    import pyarrow.parquet as pq

    vector_type = pq.read_schema(result.output / "part-00000.parquet").field("vector").type
    assert vector_type.value_type == pa.float32()  # not float64: half the bytes per vector
    built = MRLIndex(bi_encoder, index_type="flat", search_dim=None)
    assert add_encoded(built, result.output) == len(rows)
    direct = MRLIndex(bi_encoder, index_type="flat", search_dim=None)
    direct.add([r["text"] for r in rows], ids=[r["id"] for r in rows], metadatas=[r["metadata"] for r in rows])
    for query in ("giant panda", "python library"):
        a, b = built.search(query, 5), direct.search(query, 5)
        assert [h.id for h in a] == [h.id for h in b]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
        assert a[0].metadata == b[0].metadata


def test_encode_job_of_a_colbert_model_feeds_a_colbert_index(tmp_path):
    model = tc.build_tiny_colbert(tmp_path / "colbert")
    data = _write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in TEXTS[:12]])
    result = run_job(EncodeJob(str(model)), data, tmp_path / "enc", rows_per_shard=5, show_progress_bar=False)
    assert all("tokens" in row and "id" not in row for row in result.read())
    built = ColBERTIndex(model, faiss_index="none")
    add_encoded(built, result.output)
    direct = ColBERTIndex(model, faiss_index="none")
    direct.add(TEXTS[:12])
    a, b = built.search("giant panda", 4), direct.search("giant panda", 4)
    assert [h.text for h in a] == [h.text for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-3)  # float16 storage


def test_errors(bert_cross_encoder, tmp_path, monkeypatch):
    data = _write_jsonl(tmp_path / "pairs.jsonl", _score_rows(4))
    job = ScoreJob(str(bert_cross_encoder))
    run_job(job, data, tmp_path / "out", rows_per_shard=2, show_progress_bar=False)
    # a folder made by another job (or settings) is never mixed with this one's parts
    with pytest.raises(ValueError, match="holds the output of a 'score' job with other input or settings"):
        run_job(ScoreJob(str(bert_cross_encoder), model_options={"max_length": 16}), data, tmp_path / "out")
    # a bad row is named by file and line (blank lines counted)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "document": "d"}) + "\n\n" + json.dumps({"query": "q"}) + "\n")
    with pytest.raises(DataFormatError, match=r"bad\.jsonl:3: each row needs 'document'"):
        run_job(job, bad, tmp_path / "bad-out", rows_per_shard=1, show_progress_bar=False)
    # an unfinished folder cannot be read as a whole
    (tmp_path / "bad-out" / "part-00000.jsonl").unlink()
    with pytest.raises(ValueError, match="unfinished job"):
        list(read_output(tmp_path / "bad-out"))
    with pytest.raises(ValueError, match="engine must be one of"):
        run_job(job, data, tmp_path / "x", engine="spark")
    # without Ray installed, the engine names the extra before any work
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"rag-retrieval\[ray\]"):
        run_job(job, data, tmp_path / "y", engine="ray")
    assert not (tmp_path / "y").exists()


def test_cli_runs_a_job_and_continues_it(bi_encoder, tmp_path, capsys):
    from rag_retrieval_integrations.batch.cli import main

    data = _write_jsonl(tmp_path / "corpus.jsonl", [{"text": t} for t in TEXTS[:6]])
    argv = ["encode", str(data), str(tmp_path / "enc"), "--model", str(bi_encoder), "--rows-per-shard", "4", "--quiet"]
    assert main(argv) == 0
    assert "2 shards (2 run now, 0 finished before), 6 rows computed" in capsys.readouterr().out
    assert main(argv) == 0
    assert "(0 run now, 2 finished before)" in capsys.readouterr().out
    assert len(list(read_output(tmp_path / "enc"))) == 6
    assert main(["score", str(tmp_path / "missing.jsonl"), str(tmp_path / "s"), "--model", str(bi_encoder)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_model_retrained_behind_the_same_path_never_continues_the_folder(tmp_path):
    model = checkpoints.build_bert_cross_encoder(tmp_path / "ce")
    data = _write_jsonl(tmp_path / "pairs.jsonl", _score_rows(4))
    job = ScoreJob(str(model))
    run_job(job, data, tmp_path / "out", rows_per_shard=2, show_progress_bar=False)
    checkpoints.build_bert_cross_encoder(tmp_path / "ce", seed=1)  # other weights, same folder
    with pytest.raises(ValueError, match="other input or settings"):
        run_job(job, data, tmp_path / "out", rows_per_shard=2, show_progress_bar=False)


def test_parquet_input_in_row_groups_is_read_shard_by_shard(bert_cross_encoder, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"query": r["query"], "documents": _docs(r)} for r in _score_rows(10)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pairs.parquet", row_group_size=3)
    job = ScoreJob(str(bert_cross_encoder))
    out = list(run_job(job, tmp_path / "pairs.parquet", tmp_path / "out", rows_per_shard=4).read())
    assert [r["documents"] for r in out] == [r["documents"] for r in rows]
    expected = Reranker(bert_cross_encoder).compute_score([(r["query"], d) for r in rows for d in r["documents"]])
    np.testing.assert_allclose([s for r in out for s in r["scores"]], expected, atol=1e-5)
