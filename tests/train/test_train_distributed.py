"""Two CPU processes (gloo) train to the same weights as one process doing the same updates: the embedding,
reranker (cross-encoder; LLM with LoRA), ColBERT and distill trainers; and cross-device negatives really
score the other process's documents."""

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


def _train(config: dict, processes: int, tmp_path: Path, command: str = "embedding") -> Path:
    config_file = tmp_path / f"cfg-{command}-{processes}.yaml"
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
        [*launcher, "-m", "rag_retrieval_train", command, "--config", str(config_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return Path(config["output_dir"])


SENTENCES = list(dict.fromkeys(checkpoints.CORPUS))


def test_two_gloo_processes_equal_one_process(tmp_path):
    model = checkpoints.build_bi_encoder(tmp_path / "bi-no-dropout", dropout=0.0)
    data = tmp_path / "train.jsonl"
    with open(data, "w") as f:  # one negative per row: the same groups in every process and epoch
        for i in range(8):
            f.write(json.dumps({"query": SENTENCES[i][:20], "pos": [SENTENCES[i]], "neg": [SENTENCES[i + 8]]}) + "\n")
    config = {"model_name_or_path": str(model), "train_data": str(data), "max_length": 32}
    _parity("embedding", {**config, "gather_across_devices": True}, model, tmp_path)


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


def _no_dropout(folder: Path) -> Path:
    """Dropout off in every config of a checkpoint: two processes draw other dropout masks than one."""
    for config in folder.rglob("config.json"):
        values = json.loads(config.read_text())
        for name in list(values):
            if "dropout" in name and isinstance(values[name], (int, float)):
                values[name] = 0.0
        config.write_text(json.dumps(values))
    return folder


def _assert_same_weights(one: Path, two: Path, start: Path, tol: float = 1e-5) -> None:
    a, b = _weights(one), _weights(two)
    initial = _weights(start)
    assert a.keys() == b.keys()
    assert any(k in initial and not torch.allclose(a[k], initial[k]) for k in a), "training did not change the weights"
    for key in a:
        diff = (b[key] - a[key]).abs().max().item()
        assert diff < tol, f"{key}: the 2-process weights differ from the 1-process ones by {diff:.2e}"


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for file in sorted(folder.rglob("*.safetensors")):
        if "checkpoint-" not in str(file.relative_to(folder)):
            out |= {f"{file.parent.relative_to(folder)}/{k}": v for k, v in load_file(str(file)).items()}
    return out


# SGD: Adam's update m/sqrt(v) turns round-off in near-zero gradients into full-size steps, which would
# hide whether the two runs computed the same gradients.
SGD = {
    "max_steps": 3,
    "learning_rate": 0.5,
    "optim": "sgd",
    "weight_decay": 0.0,
    "report_to": [],
    "logging_steps": 1,
    "disable_progress_bar": True,
    "warmup_ratio": 0.0,
}


def _parity(command: str, config: dict, start: Path, tmp_path: Path, tol: float = 1e-5) -> None:
    """Every step holds the whole data set (8 rows): 1 process x 8 rows, or 2 processes x 4 rows."""
    single = _train({**SGD, **config, "batch_size": 8, "output_dir": str(tmp_path / "one")}, 1, tmp_path, command)
    double = _train({**SGD, **config, "batch_size": 4, "output_dir": str(tmp_path / "two")}, 2, tmp_path, command)
    _assert_same_weights(single, double, start, tol)
    ran = json.loads((double / "rag_retrieval.json").read_text())["training"]
    assert (ran["steps"], ran["distributed"], ran["processes"]) == (3, "MULTI_CPU", 2)


def _grouped(tmp_path: Path) -> Path:
    from kit.train_data import write_grouped

    return write_grouped(tmp_path / "grouped.jsonl", n=8)


def test_reranker_cross_encoder_two_processes_equal_one(tmp_path):
    model = _no_dropout(checkpoints.build_bert_cross_encoder(tmp_path / "ce"))
    config = {"model_name_or_path": str(model), "train_data": str(_grouped(tmp_path)), "train_group_size": 3}
    _parity("reranker", {**config, "loss": "listwise_ce", "max_length": 48}, model, tmp_path)


def test_llm_reranker_with_lora_two_processes_equal_one(tmp_path):
    model = _no_dropout(checkpoints.build_decoder_llm(tmp_path / "llm"))
    config = {
        "model_name_or_path": str(model),
        "train_data": str(_grouped(tmp_path)),
        "train_group_size": 2,
        "loss": "listwise_ce",
        "max_length": 96,
        "lora": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "learning_rate": 0.05,
    }
    _parity("reranker", config, model, tmp_path, tol=2e-5)


def test_colbert_two_processes_equal_one_with_cross_device_negatives(tmp_path):
    from kit import colbert as tiny_colbert
    from kit.train_data import write_triplets

    model = _no_dropout(tiny_colbert.build_tiny_colbert(tmp_path / "colbert"))
    config = {
        "model_name_or_path": str(model),
        "train_data": str(write_triplets(tmp_path / "triplets.jsonl", n=8)),
        "train_group_size": 2,
        "gather_across_devices": True,
        "max_length": 32,
    }
    _parity("colbert", config, model, tmp_path)


def test_distill_student_two_processes_equal_one(bert_cross_encoder, tmp_path):
    from rag_retrieval_integrations import Reranker
    from rag_retrieval_train.distill import score_with_teacher

    data = _grouped(tmp_path)
    scores = score_with_teacher(Reranker(bert_cross_encoder), data, tmp_path / "scores.jsonl", show_progress_bar=False)
    model = _no_dropout(checkpoints.build_bert_cross_encoder(tmp_path / "student", seed=1))
    config = {
        "step": "student",
        "model_name_or_path": str(model),
        "train_data": str(data),
        "teacher_scores": str(scores),
        "loss": "distill_kl",
        "train_group_size": 3,
        "max_length": 48,
    }
    _parity("distill", config, model, tmp_path)


GATHER_SCRIPT = """
import json, os, sys, torch, torch.distributed as dist
from rag_retrieval_train.losses.info_nce import InfoNCELoss
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
q, p, n = (torch.randn(8, 16) for _ in range(3))
mine = slice(4 * rank, 4 * rank + 4)
out = {}
for gather in (True, False):
    loss = InfoNCELoss(None, temperature=0.1, gather_across_devices=gather)
    out[str(gather)] = loss.compute_loss_from_embeddings([q[mine], p[mine], n[mine]]).item()
out["full"] = InfoNCELoss(None, temperature=0.1).compute_loss_from_embeddings([q, p, n]).item()
json.dump(out, open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w"))
dist.destroy_process_group()
"""


def test_gather_across_devices_scores_the_other_process_documents(tmp_path):
    """Each process's queries are scored against both processes' documents: the mean of the two ranks'
    losses is the one-process loss of the whole batch, which it is not without the gather."""
    script = tmp_path / "gather.py"
    script.write_text(GATHER_SCRIPT)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={_free_port()}"]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*launcher, "--master-addr=127.0.0.1", str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    full = ranks[0]["full"]
    gathered = (ranks[0]["True"] + ranks[1]["True"]) / 2
    alone = (ranks[0]["False"] + ranks[1]["False"]) / 2
    assert abs(gathered - full) < 1e-5
    assert abs(alone - full) > 1e-3  # the check can fail: 4 documents per query are not 16


FSDP2_SCRIPT = """
import json, os, sys, torch, torch.distributed as dist
from sentence_transformers import SentenceTransformer
from rag_retrieval_train.fsdp import transformer_layer_names
from rag_retrieval_train.losses.info_nce import InfoNCELoss
sharded = len(sys.argv) > 4
if sharded:
    from torch.distributed.fsdp import fully_shard
    dist.init_process_group("gloo")
rank, world = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
model = SentenceTransformer(sys.argv[1], device="cpu")
layers = set(transformer_layer_names(model))
if sharded:  # the layers rag_retrieval_train.fsdp names for accelerate, then the root: torch's FSDP2
    for module in list(model.modules()):
        if type(module).__name__ in layers:
            fully_shard(module)
    fully_shard(model)
initial = {k: v.detach().clone() for k, v in model.state_dict().items()} if not sharded else {}
rows = json.load(open(sys.argv[2]))[rank::world]
loss_fn = InfoNCELoss(model, temperature=0.05, gather_across_devices=sharded)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for _ in range(2):
    features = [model.tokenize([row[i] for row in rows]) for i in range(3)]
    loss = loss_fn(features, None)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone() for k, v in model.state_dict().items()}
if rank == 0:
    torch.save({"state": state, "initial": initial, "layers": sorted(layers), "sharded": [type(p).__name__ for p in model.parameters()][:1]}, sys.argv[3])
if sharded:
    dist.barrier()
    dist.destroy_process_group()
    # Gloo's worker threads can still hold work objects whose tensors reference Python; freeing them during
    # interpreter finalization aborts the process now and then ("terminate called without an active exception",
    # pytorch/pytorch#179291, about 1 run in 10 on a loaded 2-core machine). The results are saved: skip finalization.
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)
"""


def test_fsdp2_shards_the_named_layers_on_cpu_and_trains_as_one_process(tmp_path):
    """accelerate 1.x never selects FSDP on a CPU-only launch (docs/training.md says why), but torch's FSDP2
    ``fully_shard`` runs over gloo: wrapping the layers ``rag_retrieval_train.fsdp`` names, two sharded processes
    train the weights that one unsharded process does."""
    model = checkpoints.build_bi_encoder(tmp_path / "bi", dropout=0.0)
    rows = [[SENTENCES[i][:20], SENTENCES[i], SENTENCES[i + 8]] for i in range(8)]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    script = tmp_path / "fsdp2.py"
    script.write_text(FSDP2_SCRIPT)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = [str(script), str(model), str(tmp_path / "rows.json")]
    one = subprocess.run([sys.executable, *args, str(tmp_path / "one.pt")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-3000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", f"--master-port={_free_port()}"]
    two = subprocess.run(
        [*launcher, "--master-addr=127.0.0.1", *args, str(tmp_path / "two.pt"), "sharded"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert "BertLayer" in b["layers"] and b["sharded"] == ["DTensor"]  # really sharded, layer by layer
    assert any(not torch.allclose(a["state"][k], a["initial"][k]) for k in a["state"]), "nothing was trained"
    for key, value in a["state"].items():
        diff = (b["state"][key] - value).abs().max().item()
        assert diff < 1e-5, f"{key}: the FSDP2 weights differ from the one-process ones by {diff:.2e}"
