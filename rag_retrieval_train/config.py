"""Training configuration: typed dataclasses, YAML files and command-line overrides.

Precedence, lowest to highest: the dataclass defaults, the YAML file, the command-line flags.
Unknown keys, in the file or on the command line, are errors that list the valid keys (the
original RAG-Retrieval code let YAML silently override flags; here a flag always wins).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import yaml

from rag_retrieval_integrations.evaluation.metrics import RERANK_METRICS, RETRIEVAL_METRICS

RESOLVED_CONFIG_FILE = "rag_retrieval_train_config.yaml"

# a trainer's EVAL_TASK -> the metrics measured during training, and what its eval_data is
EVAL_TASKS: dict[str, tuple[tuple[str, ...], str]] = {
    "rerank": (RERANK_METRICS, "a reranking set: JSONL {query, candidates: [{content, label}]} or a WikiQA TSV"),
    "retrieval": (RETRIEVAL_METRICS, "a retrieval set: a BEIR folder or a SQuAD v1.1 .json file"),
}


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message names the key and the valid choices."""


def require(
    config: Any,
    name: str,
    *,
    above: float | None = None,
    at_least: float | None = None,
    below: float | None = None,
    what: str = "",
) -> None:
    """Raise a :class:`ConfigError` naming ``name`` and its value unless it lies in the range; NaN never does.

    A list value is checked item by item (``mrl_weights[1]`` names the item); ``what`` says what the key means.
    """
    value = getattr(config, name)
    for key, item in [(f"{name}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [(name, value)]:
        low_ok = (above is None or item > above) and (at_least is None or item >= at_least)
        if not (low_ok and (below is None or item < below)):
            if at_least is not None and below is not None:
                bounds = f"in [{at_least:g}, {below:g})"
            elif above == 0 and below is None:
                bounds = "positive"
            else:
                limits = ((">", above), (">=", at_least), ("<", below))
                bounds = " and ".join(f"{op} {bound:g}" for op, bound in limits if bound is not None)
            raise ConfigError(f"{key} must be {bounds}{f' ({what})' if what else ''}, got {item!r}")


def key(default: Any = dataclasses.MISSING, doc: str = "", *, factory: Callable[[], Any] | None = None) -> Any:
    """A config field with its one-line description, which ``--list-keys`` and
    ``docs/training-keys.md`` show (``factory`` for a mutable default, as ``field(default_factory=)``)."""
    if factory is not None:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def key_doc(item: dataclasses.Field) -> str:
    """The description :func:`key` gave a config field ("" where it has none)."""
    return str(item.metadata.get("doc", ""))


@dataclass
class TrainConfig:
    """Options every trainer shares. Each maps onto ``transformers.TrainingArguments``.

    ``RESUME_FREE_KEYS`` are the keys that may differ between a run and its resumption: they do not
    change the weights it trains to (where it writes, logging, saving, data loader workers, memory
    knobs). ``epochs`` and ``max_steps`` are among them so that a finished or stopped run can be
    continued for longer (raising either trains on from the checkpoint; the learning-rate schedule
    is then stretched to the new total). Every other key, model, data and seed included, must match
    the config saved in ``output_dir`` for ``resume`` to continue it.
    """

    RESUME_FREE_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "output_dir",
            "resume",
            "overwrite_output_dir",
            "epochs",
            "max_steps",
            "save_steps",
            "save_total_limit",
            "keep_checkpoints",
            "logging_steps",
            "report_to",
            "dataloader_num_workers",
            "disable_progress_bar",
            "gradient_checkpointing",
        }
    )

    # what eval_data is and what evaluation during training measures (a key of EVAL_TASKS); set per trainer
    EVAL_TASK: ClassVar[str] = ""

    model_name_or_path: str = key("", "the checkpoint to start from: a local folder or a hub id (required)")
    train_data: str = key("", "the training data: a JSONL file (required; see each trainer for its line format)")
    output_dir: str = key("", "where the checkpoints, the trained model and its metadata are written (required)")
    epochs: float = key(1.0, "passes over the training data (fractions allowed)")
    max_steps: int = key(-1, "optimizer steps to train for; > 0 overrides epochs")
    batch_size: int = key(16, "examples per device and step (see each trainer for what an example is)")
    gradient_accumulation_steps: int = key(1, "batches whose gradients are summed before each optimizer step")
    learning_rate: float = key(2e-5, "peak learning rate")
    warmup_ratio: float = key(0.1, "fraction of the steps spent warming the learning rate up, in [0, 1)")
    weight_decay: float = key(0.01, "AdamW weight decay")
    lr_scheduler_type: str = key("linear", "any transformers scheduler name (linear, cosine, constant...)")
    optim: str = key("adamw_torch_fused", "any transformers optimizer name (this is transformers' default)")
    max_grad_norm: float = key(1.0, "gradients are clipped to this norm (0: no clipping)")
    seed: int = key(42, "seed of the weights' initialization, the data order and the drawn negatives")
    mixed_precision: Literal["no", "fp16", "bf16"] = key("no", "mixed-precision training (fp16/bf16 need a GPU)")
    gradient_checkpointing: bool = key(False, "recompute activations in the backward pass: less memory, slower")
    max_length: int = key(256, "tokens per model input in training (see each trainer)")
    save_steps: int = key(0, "0: save a checkpoint at the end of every epoch; N > 0: every N steps")
    save_total_limit: int = key(2, "checkpoints kept in output_dir while training (the oldest are deleted; 0: all)")
    keep_checkpoints: bool = key(
        False, "false: a finished run deletes its checkpoint-* folders (kept after a failed one, to resume)"
    )
    logging_steps: int = key(10, "steps between two logged losses (the loss curve's points)")
    resume: bool | str = key(
        False, "true: continue from the latest complete checkpoint in output_dir; or a checkpoint folder"
    )
    overwrite_output_dir: bool = key(False, "true: a new run replaces an earlier run's files in output_dir")
    report_to: list[str] = key(
        doc="training logs besides loss_curve.png: [] none, tensorboard (<output_dir>/runs), wandb...", factory=list
    )
    dataloader_num_workers: int = key(0, "data loader worker processes (0: load in the main process)")
    disable_progress_bar: bool = key(False, "no progress bars (training, model and data loading)")
    eval_data: str = key(
        "", "evaluate during training on this set, as rag-retrieval-eval reads it (see each trainer; '': none)"
    )
    eval_split: str = key("test", "a BEIR-folder eval_data: the qrels/<split>.tsv evaluated on")
    eval_steps: int = key(0, "with eval_data: 0 evaluates at the end of every epoch; N > 0 every N steps (and last)")
    metric_for_best_model: str = key(
        "", "the eval metric that picks the best step (see each trainer; '': its first; higher is better)"
    )
    load_best_model_at_end: bool = key(
        False, "with eval_data: output_dir gets the best step's weights, not the last (save_steps follows eval_steps)"
    )

    def validate(self) -> None:
        for name in ("model_name_or_path", "train_data", "output_dir"):
            if not getattr(self, name):
                raise ConfigError(f"{name} is required (in the YAML file or as --{name})")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "logging_steps"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ConfigError("set epochs > 0 or max_steps > 0")
        require(self, "learning_rate", above=0)
        # transformers reads a warmup >= 1 as a step count: 1.0 would mean one step, not the whole run
        require(self, "warmup_ratio", at_least=0, below=1, what="the fraction of the steps spent warming up")
        for name in ("weight_decay", "max_grad_norm", "save_steps", "save_total_limit", "dataloader_num_workers"):
            require(self, name, at_least=0)
        self._validate_evaluation()
        if self.overwrite_output_dir and self.resume is True:
            raise ConfigError(
                "overwrite_output_dir: true deletes the checkpoints that resume: true would continue; set one of them"
            )

    def _validate_evaluation(self) -> None:
        require(self, "eval_steps", at_least=0)
        if not self.eval_data:
            for name in ("metric_for_best_model", "load_best_model_at_end"):
                if getattr(self, name):
                    raise ConfigError(f"{name} needs eval_data (the set evaluated during training)")
            return
        if type(self).EVAL_TASK not in EVAL_TASKS:
            raise ConfigError(f"eval_data: {type(self).__name__} has no evaluation during training")
        if not Path(self.eval_data).exists():
            raise ConfigError(f"eval_data {self.eval_data!r} does not exist ({EVAL_TASKS[type(self).EVAL_TASK][1]})")
        self.best_metric()  # a ConfigError listing the choices for an unknown name
        if self.load_best_model_at_end:
            # transformers keeps the best checkpoint, so one must be saved at every evaluation
            if self.save_steps and (not self.eval_steps or self.save_steps % self.eval_steps):
                every = f"every {self.eval_steps} steps" if self.eval_steps else "at the end of every epoch"
                raise ConfigError(
                    f"load_best_model_at_end: save_steps={self.save_steps} does not save a checkpoint at every "
                    f"evaluation ({every}); set save_steps: 0 (it then follows eval_steps) or a multiple of eval_steps"
                )

    @classmethod
    def eval_metrics(cls) -> tuple[str, ...]:
        """What evaluation during training measures, as the evaluation package names it (none: no evaluation)."""
        return EVAL_TASKS[cls.EVAL_TASK][0] if cls.EVAL_TASK in EVAL_TASKS else ()

    def best_metric(self) -> str:
        """``metric_for_best_model`` as the evaluator names it (case and an ``eval_`` prefix aside); by
        default the trainer's first eval metric. A :class:`ConfigError` lists the choices for another name."""
        choices = type(self).eval_metrics()
        wanted = self.metric_for_best_model.strip().lower().removeprefix("eval_")
        if not wanted:
            return choices[0]
        for name in choices:
            if name.lower() == wanted:
                return name
        raise ConfigError(f"metric_for_best_model must be one of {list(choices)}, got {self.metric_for_best_model!r}")


C = TypeVar("C", bound=TrainConfig)


def config_keys(cls: type[TrainConfig]) -> list[str]:
    return [f.name for f in fields(cls)]


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against the field's type, converting what YAML or a flag could not tell apart."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        errors = []
        for option in args:
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(name, value, option)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{name}: {value!r} is not any of {[getattr(a, '__name__', str(a)) for a in args]}")
    if origin is Literal:
        if value is False and "no" in args:  # YAML 1.1 reads an unquoted `no` as false
            value = "no"
        if value not in args:
            raise ConfigError(f"{name} must be one of {list(args)}, got {value!r}")
        return value
    if origin is list:
        if isinstance(value, str):  # "--mrl_dims 64,128" on the command line
            value = [yaml.safe_load(v) for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            value = [value]
        return [_coerce(f"{name}[{i}]", v, args[0] if args else Any) for i, v in enumerate(value)]
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _is_text(annotation: Any) -> bool:
    """Whether a field holds text (str or a Literal of strings, maybe optional)."""
    if annotation is str:
        return True
    if get_origin(annotation) is Literal:
        return all(isinstance(a, str) for a in get_args(annotation))
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return bool(options) and all(_is_text(a) for a in options)
    return False


def _from_flag(raw: str, annotation: Any) -> Any:
    """A command-line value: text fields take it literally ("Query: x" stays a string, "no" stays
    "no"); other fields parse it as a YAML scalar or list ("32", "true", "[64, 128]")."""
    if _is_text(annotation):
        optional = type(None) in get_args(annotation)
        return None if optional and raw.lower() in ("null", "none", "~") else raw
    return yaml.safe_load(raw) if raw != "" else ""


def build_config(cls: type[C], file_values: dict[str, Any], flag_values: dict[str, str]) -> C:
    """The config from defaults, then ``file_values`` (YAML), then ``flag_values`` (command line, raw text)."""
    valid = config_keys(cls)
    hints = typing.get_type_hints(cls)
    merged: dict[str, Any] = {}
    for source, values in (("config file", file_values), ("command line", flag_values)):
        for key, value in values.items():
            if key not in valid:  # not `hints`: those include class variables
                raise ConfigError(f"unknown key {key!r} ({source}); valid keys: {', '.join(valid)}")
            if source == "command line" and isinstance(value, str):
                try:
                    value = _from_flag(value, hints[key])
                except yaml.YAMLError as e:
                    raise ConfigError(f"--{key}: {value!r} is not a valid value ({_yaml_problem(e)})") from None
            merged[key] = _coerce(key, value, hints[key])
    config = cls(**merged)
    config.validate()
    return config


def parse_flags(argv: list[str]) -> dict[str, str]:
    """``--key value`` / ``--key=value`` / bare ``--flag`` (``"true"``) into a dict of raw text;
    :func:`build_config` converts each value by its field's type. Dashes in keys become underscores."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"expected --key value, got {token!r}")
        key, sep, raw = token[2:].partition("=")
        if not sep:
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                raw = argv[i + 1]
                i += 1
            else:
                raw = "true"
        values[key.replace("-", "_")] = raw
        i += 1
    return values


def _yaml_problem(error: yaml.YAMLError) -> str:
    """The gist of a YAML error, on one line."""
    problem = getattr(error, "problem", None) or str(error)
    return " ".join(str(problem).split())


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; a syntax error is a :class:`ConfigError` ``"{path}:{line}: ..."``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {_yaml_problem(e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return data


def config_payload(config: TrainConfig, trainer: str) -> dict[str, Any]:
    """The config as :func:`save_config` writes it (and as reading that file back gives it)."""
    return yaml.safe_load(yaml.safe_dump({"trainer": trainer, **dataclasses.asdict(config)}, sort_keys=False))


def save_config(config: TrainConfig, folder: str | Path, trainer: str) -> Path:
    """Write the resolved config, as trained, next to the checkpoint."""
    path = Path(folder) / RESOLVED_CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config_payload(config, trainer), sort_keys=False), encoding="utf-8")
    return path
