"""The model card every trainer writes: ``README.md`` in the Hugging Face model-card layout.

YAML front matter (``library_name``, ``base_model``, ``tags``, ``pipeline_tag``, and ``license``
only when the base model's own card names one), then the base model, the data files with their
rows, the loss and the key hyperparameters, the steps and time trained, the eval metrics of the
weights saved when the run evaluated (``eval_data``: the best step's with ``load_best_model_at_end``,
and which step was best), and code that loads the folder with this project (``Reranker(path)``) and with the
peers that load it as it is (sentence-transformers, FlagEmbedding).

sentence-transformers' ``save`` writes a card of its own for embedding and ColBERT models; the
trainers save with ``create_model_card=False`` and **this card replaces theirs**, so that every
trainer's folder has the same card, written from what our run knows (its config, its data files,
its trainer state). It is written by :class:`~.trainer.TrainingRun` for every trainer, on the main
process, after the model and our metadata file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rag_retrieval_integrations.core.models.registry import get_model_class

if TYPE_CHECKING:
    from .trainer import TrainingRun

MODEL_CARD_FILE = "README.md"

# the hyperparameters a card lists, where the trainer's config has them
_HYPERPARAMETERS = (
    "epochs",
    "max_steps",
    "batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "weight_decay",
    "max_length",
    "train_group_size",
    "temperature",
    "mixed_precision",
    "seed",
    "lora_r",
    "merge_lora",
)


def data_rows(path: str | Path) -> int | None:
    """Rows of a data file: non-blank lines of JSONL, the first dimension of an ``.npy``; ``None`` if unreadable."""
    path = Path(path)
    try:
        if path.suffix == ".npy":
            import numpy as np

            return int(np.load(path, mmap_mode="r").shape[0])
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except (OSError, ValueError):
        return None


def base_model_license(base_model: str) -> str | None:
    """The ``license`` of a local base model's own card, if it names one (nothing is looked up online)."""
    card = Path(base_model) / MODEL_CARD_FILE
    try:
        front = _front_matter(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
    value = front.get("license")
    return str(value) if isinstance(value, str) and value else None


def _front_matter(text: str) -> dict[str, Any]:
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    try:
        data = yaml.safe_load(text[3:end]) if end > 0 else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def front_matter(model_type: str, base_model: str, loss: str | None, trainer: str) -> dict[str, Any]:
    """The card's YAML header."""
    card = get_model_class(model_type).card  # what the family declares about its checkpoints
    header: dict[str, Any] = {"library_name": card.library, "base_model": base_model}
    license_name = base_model_license(base_model)
    if license_name:
        header["license"] = license_name
    header["pipeline_tag"] = card.pipeline_tag
    header["tags"] = [
        *card.tags,
        "rag-retrieval",
        f"rag-retrieval-train-{trainer}",
        *([f"loss:{loss}"] if loss else []),
    ]
    return header


def usage(model_type: str, path: str, peers: bool = True) -> str:
    """Python that loads the folder at ``path`` with this project and (``peers``) the libraries that
    load it as it is."""
    where = json.dumps(path)
    ours = [
        "from rag_retrieval_integrations import Reranker",
        "",
        f"ranker = Reranker({where})",
        'print(ranker.rank("what is a panda?", ["The giant panda is a bear.", "Paris is in France."]))',
    ]
    their: dict[str, list[str]] = {
        "embedding": [
            "from sentence_transformers import SentenceTransformer",
            "",
            f"model = SentenceTransformer({where})",
            'queries = model.encode_query(["what is a panda?"])',
            'documents = model.encode_document(["The giant panda is a bear.", "Paris is in France."])',
            "print(model.similarity(queries, documents))",
        ],
        "colbert": [
            "from sentence_transformers import MultiVectorEncoder",
            "",
            f"model = MultiVectorEncoder({where})",
            'queries = model.encode_query(["what is a panda?"])',
            'documents = model.encode_document(["The giant panda is a bear.", "Paris is in France."])',
        ],
        "sparse": [
            "from sentence_transformers import SparseEncoder",
            "",
            f"model = SparseEncoder({where})",
            'queries = model.encode_query(["what is a panda?"])',
            'documents = model.encode_document(["The giant panda is a bear.", "Paris is in France."])',
            "print(model.similarity(queries, documents))",
        ],
        "cross-encoder": [
            "from sentence_transformers import CrossEncoder",
            "",
            f"model = CrossEncoder({where})",
            'print(model.predict([("what is a panda?", "The giant panda is a bear.")]))',
            "",
            "from FlagEmbedding import FlagReranker",
            "",
            f"reranker = FlagReranker({where})",
            'print(reranker.compute_score([["what is a panda?", "The giant panda is a bear."]]))',
        ],
        "llm": [
            "# FlagEmbedding builds its own prompt: the same scores as Reranker when the model was",
            "# trained with FlagEmbedding's prompt template (Reranker uses the one saved with the model)",
            "from FlagEmbedding import FlagLLMReranker",
            "",
            f"reranker = FlagLLMReranker({where})",
            'print(reranker.compute_score([["what is a panda?", "The giant panda is a bear."]]))',
        ],
    }
    blocks = ["```python", *ours, "```"]
    if peers and model_type in their:
        blocks += ["", "```python", *their[model_type], "```"]
    return "\n".join(blocks)


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    return ["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]


def _training_totals(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    return next((entry for entry in reversed(log_history) if "train_runtime" in entry), {})


def eval_metrics(log_history: list[dict[str, Any]], step: int | None = None) -> dict[str, Any]:
    """The eval metrics logged at ``step`` (by default the last evaluation's); none unless the run evaluated."""
    metrics: dict[str, Any] = {}
    for entry in log_history:
        if step is None or entry.get("step") == step:
            metrics.update({k: v for k, v in entry.items() if k.startswith("eval_") and k != "eval_runtime"})
    return metrics


def _evaluation(run: TrainingRun, state: Any) -> list[str]:
    """The card's evaluation section: the metrics of the weights saved (the best step's with
    ``load_best_model_at_end``, else the last evaluation's), on which set, at which step."""
    c = run.config
    steps = [
        entry["step"] for entry in state.log_history if "step" in entry and any(k.startswith("eval_") for k in entry)
    ]
    if not steps:
        return []
    best = state.best_global_step or None
    saved = best if c.load_best_model_at_end and best is not None else steps[-1]
    rows: list[tuple[str, Any]] = [("set", f"`{c.eval_data}`" if c.eval_data else "?"), ("step", saved)]
    if best is not None:
        loaded = "; its weights are the ones saved" if saved == best else ""
        rows.append(("best step", f"{best} by `{c.best_metric()}` ({float(state.best_metric):.4f}){loaded}"))
    rows += [
        (f"`{k.removeprefix('eval_')}`", f"{float(v):.4f}") for k, v in eval_metrics(state.log_history, saved).items()
    ]
    return ["## Evaluation", "", *_table(rows), ""]


def render(run: TrainingRun, state: Any) -> str:
    """The card of a finished ``run`` (its config and model type) from the trainer's ``state``."""
    c = run.config
    loss = getattr(c, "loss", None)
    header = front_matter(run.model_type, c.model_name_or_path, loss, run.name)
    totals = _training_totals(state.log_history)
    lines = ["---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", ""]
    lines += [f"# {Path(c.output_dir).name or c.output_dir}", ""]
    lines += [
        f"Model type `{run.model_type}`, fine-tuned from `{c.model_name_or_path}` with "
        f"rag-retrieval (`rag-retrieval-train {run.name}`).",
        "",
        "## Training data",
        "",
        "| key | file | rows |",
        "|---|---|---|",
    ]
    for name, path in run.data_files().items():
        rows = data_rows(path)
        lines.append(f"| `{name}` | `{path}` | {rows if rows is not None else '?'} |")
    hyper = [(f"`{name}`", f"`{getattr(c, name)}`") for name in _HYPERPARAMETERS if hasattr(c, name)]
    if getattr(c, "lora", False) is False:
        hyper = [row for row in hyper if row[0] not in ("`lora_r`", "`merge_lora`")]
    lines += ["", "## Training", "", *_table([("loss", f"`{loss}`"), *hyper]), ""]
    runtime = totals.get("train_runtime")
    done = [
        ("steps", state.global_step),
        ("epochs", round(state.epoch, 4) if state.epoch is not None else "?"),
        ("time", f"{float(runtime):.1f} s" if runtime is not None else "?"),
    ]
    if "train_loss" in totals:
        done.append(("mean training loss", f"{float(totals['train_loss']):.4g}"))
    curve = "; the loss curve: `loss_curve.png`" if (Path(c.output_dir) / "loss_curve.png").is_file() else ""
    lines += [*_table(done), "", f"The full config: `rag_retrieval_train_config.yaml`{curve}.", ""]
    lines += _evaluation(run, state)
    # an unmerged LoRA adapter is ours to load (with its base model); the peers take whole models
    adapter = bool(getattr(c, "lora", False)) and not getattr(c, "merge_lora", True)
    lines += ["## Usage", "", usage(run.model_type, str(c.output_dir), peers=not adapter), ""]
    return "\n".join(lines)


def write_model_card(run: TrainingRun, state: Any) -> Path:
    """Write ``README.md`` into the run's ``output_dir`` (replacing any card a library's save wrote)."""
    path = Path(run.output_dir) / MODEL_CARD_FILE
    path.write_text(render(run, state), encoding="utf-8")
    return path
