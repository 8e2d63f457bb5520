"""Early exit as a speed/quality dial: WikiQA dev MAP and pairs/s at several ``cutoff_layers``.

A decoder reranker can score from the hidden state after layer ``l`` (through the model's final
norm and LM head) and skip the layers above it. This measures what that costs in quality and buys
in speed on a real model, by default the SmolLM2-135M-Instruct yes-token reranker fine-tuned by
``benchmarks/train_llm_reranker_wikiqa.py`` (30 layers):

- quality: every answered WikiQA dev question (121), all layers scored in one forward pass per
  batch (``compute_score(pairs, cutoff_layers=[...])`` returns one score list per layer);
- speed: ``--speed-pairs`` of those pairs scored with one cutoff at a time, interleaved rounds,
  median pairs/s and the speed-up over the full model.

    python benchmarks/llm_early_exit.py [--model outputs/train_llm_reranker_wikiqa/run/full] [--layers 6,12,18,24,30]

Results: ``results/llm_early_exit.{json,md,png}``. Dev is also where the fine-tuning settings
were chosen: these are dev numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import WIKIQA, interleaved, map_mrr, read_wikiqa

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "outputs" / "train_llm_reranker_wikiqa" / "run" / "full"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a decoder reranker checkpoint")
    parser.add_argument("--layers", default="6,12,18,24,30", help="comma-separated cutoff layers (1-based)")
    parser.add_argument("--speed-pairs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    layers = sorted({int(x) for x in args.layers.split(",")})
    if not args.model.is_dir():
        sys.exit(f"{args.model} is not a checkpoint folder: train one with benchmarks/train_llm_reranker_wikiqa.py")

    from transformers.utils import logging as hf_logging

    from rag_retrieval_integrations import Reranker

    hf_logging.set_verbosity_error()
    dev = read_wikiqa(WIKIQA / "dev.tsv")
    questions = [q for q, rows in dev.items() if any(label for _, label in rows)]
    pairs = [(q, s) for q in questions for s, _ in dev[q]]
    # a checkpoint trained here carries its format; a plain one is read in FlagEmbedding's
    ranker = Reranker(args.model, batch_size=args.batch_size, max_length=args.max_length, **_format_of(args.model))
    per_layer = ranker.compute_score(pairs, cutoff_layers=layers)

    quality = {}
    for layer, scores in zip(layers, per_layer):
        ranked, start = [], 0
        for q in questions:
            labels = [label for _, label in dev[q]]
            block = scores[start : start + len(labels)]
            start += len(labels)
            order = sorted(range(len(labels)), key=lambda i: -block[i])
            ranked.append([labels[i] for i in order])
        quality[layer] = map_mrr(ranked)

    sample = pairs[: args.speed_pairs]
    runners = {layer: (lambda layer=layer: ranker.compute_score(sample, cutoff_layers=[layer])) for layer in layers}
    seconds, _ = interleaved({str(k): v for k, v in runners.items()}, args.rounds)
    full = seconds[str(layers[-1])]
    n_layers = ranker.model.config.num_hidden_layers

    command = (
        f"python benchmarks/llm_early_exit.py --model {args.model} --layers {args.layers} "
        f"--speed-pairs {args.speed_pairs} --rounds {args.rounds} --batch-size {args.batch_size} "
        f"--max-length {args.max_length}"
    )
    lines = [
        f"{args.model.name} ({n_layers} layers), WikiQA dev: {len(questions)} answered questions "
        f"({len(pairs)} pairs) for quality; {len(sample)} pairs x {args.rounds} interleaved rounds for speed; "
        f"CPU fp32, {torch.get_num_threads()} torch threads, max_length {args.max_length}",
        "",
        f"| cutoff layer | MAP | MRR@10 | pairs/s | speed-up over all {layers[-1]} layers |",
        "|---|---|---|---|---|",
    ]
    rows = []
    for layer in layers:
        rate = len(sample) / seconds[str(layer)]
        row = {"layer": layer, **quality[layer], "pairs_per_s": rate, "speedup": full / seconds[str(layer)]}
        rows.append(row)
        lines.append(f"| {layer} | {row['MAP']:.4f} | {row['MRR@10']:.4f} | {rate:.1f} | {row['speedup']:.2f}x |")
    lines += ["", f"command: `{command}`"]
    text = "\n".join(lines)
    print(text)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "llm_early_exit.md").write_text(text + "\n", encoding="utf-8")
    payload = {"command": command, "model": str(args.model), "rows": rows}
    (RESULTS / "llm_early_exit.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, left = plt.subplots(figsize=(5, 3.2))
    left.plot(layers, [r["MAP"] for r in rows], "o-", color="tab:blue")
    left.set_xlabel("cutoff layer")
    left.set_ylabel("WikiQA dev MAP", color="tab:blue")
    right = left.twinx()
    right.plot(layers, [r["pairs_per_s"] for r in rows], "s--", color="tab:orange")
    right.set_ylabel("pairs/s (CPU)", color="tab:orange")
    left.set_title("Early exit on the fine-tuned SmolLM2 reranker", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "llm_early_exit.png", dpi=120)
    print(f"saved {RESULTS / 'llm_early_exit.md'}, .json, .png")


if __name__ == "__main__":
    main()


def _format_of(model) -> dict:
    """No option for a checkpoint that saves its prompt format; FlagEmbedding's for a plain causal LM."""
    from rag_retrieval_integrations.core.models.checkpoint import read_checkpoint

    saved = read_checkpoint(model).metadata.get("reranker_options") or {}
    return {} if {"prompt_format", "prompt_template"} & set(saved) else {"prompt_format": "bge-reranker-v2-gemma"}
