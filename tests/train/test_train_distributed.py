"""Two CPU processes (gloo) train to the same weights as one process doing the same updates."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from kit import checkpoints
from safetensors.torch import load_file


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(config: dict, processes: int, tmp_path: Path) -> Path:
    config_file = tmp_path / f"cfg-{processes}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    launcher = (
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc-per-node={processes}",
            f"--master-port={_free_port()}",
            "--master-addr=127.0.0.1",
        ]
        if processes > 1
        else [sys.executable]
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [*launcher, "-m", "rag_retrieval_train", "embedding", "--config", str(config_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return Path(config["output_dir"])


def test_two_gloo_processes_equal_one_process(tmp_path):
    model = checkpoints.build_bi_encoder(tmp_path / "bi-no-dropout", dropout=0.0)
    data = tmp_path / "train.jsonl"
    sentences = list(dict.fromkeys(checkpoints.CORPUS))
    with open(data, "w") as f:  # one negative per row: the same groups in every process and epoch
        for i in range(8):
            f.write(json.dumps({"query": sentences[i][:20], "pos": [sentences[i]], "neg": [sentences[i + 8]]}) + "\n")
    common = {
        # SGD: Adam's update m/sqrt(v) turns round-off in near-zero gradients into full-size steps,
        # which would hide whether the two runs computed the same gradients.
        "model_name_or_path": str(model),
        "train_data": str(data),
        "max_steps": 3,
        "learning_rate": 0.5,
        "optim": "sgd",
        "weight_decay": 0.0,
        "report_to": [],
        "logging_steps": 1,
        "max_length": 32,
        "disable_progress_bar": True,
        "gather_across_devices": True,
        "warmup_ratio": 0.0,
    }
    # every step holds the whole data set (8 rows): 1 process x 8 rows, or 2 processes x 4 rows
    single = _train({**common, "batch_size": 8, "output_dir": str(tmp_path / "one")}, 1, tmp_path)
    double = _train({**common, "batch_size": 4, "output_dir": str(tmp_path / "two")}, 2, tmp_path)
    a, b = load_file(str(single / "model.safetensors")), load_file(str(double / "model.safetensors"))
    start = load_file(str(model / "model.safetensors"))
    assert any(not torch.allclose(a[k], start[k]) for k in a), "training did not change the weights"
    for key in a:
        diff = (b[key] - a[key]).abs().max().item()
        assert diff < 1e-5, f"{key}: the 2-process weights differ from the 1-process ones by {diff:.2e}"
    metadata = json.loads((double / "rag_retrieval.json").read_text())
    assert metadata["training"]["steps"] == 3


def test_cli_tears_the_process_group_down_before_exit():
    """Regression: a rank that exited with its gloo group still open aborted at interpreter
    shutdown ("terminate called without an active exception"), failing the whole launch."""
    import torch.distributed as dist

    from rag_retrieval_train.cli import _close_process_group

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        _close_process_group()
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    _close_process_group()  # no group: nothing to do, no error
