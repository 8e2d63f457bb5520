"""The training key reference, generated from the config dataclasses (their :func:`~.config.key` docs).

``python -m rag_retrieval_train.keys_doc > docs/training-keys.md`` (or ``make docs-keys``) writes
it; a test checks the committed file equals this output, so it cannot drift from the code.
``rag-retrieval-train <trainer> --list-keys`` prints the same keys, defaults and descriptions, and
``rag-retrieval-train <trainer> --help`` lists them as flags (:func:`trainer_help`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import textwrap
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from .config import TrainConfig, key_doc
from .lora import LoRAOptions
from .registry import TRAINERS, load_trainer

COMMAND = "python -m rag_retrieval_train.keys_doc > docs/training-keys.md"


def type_name(annotation: Any) -> str:
    """A field's type in words: ``int``, ``int or null``, ``list of float``, ``one of: a, b``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        options = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(options) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def default_text(item: dataclasses.Field) -> str:
    """The default as it is written in YAML (JSON flow style: ``null``, ``true``, ``"[Q] "``, ``[]``)."""
    if item.default_factory is not dataclasses.MISSING:
        value = item.default_factory()
    else:
        value = item.default
    return json.dumps(value, ensure_ascii=False)


def key_rows(cls: type, own_only: bool = False) -> list[tuple[str, str, str, str]]:
    """``(key, type, default, description)`` for each key of ``cls`` (with ``own_only``: those it declares)."""
    hints = typing.get_type_hints(cls)
    own = set(vars(cls).get("__annotations__", {}))
    return [
        (item.name, type_name(hints[item.name]), default_text(item), key_doc(item))
        for item in dataclasses.fields(cls)
        if not own_only or item.name in own
    ]


def list_keys(cls: type) -> str:
    """What ``--list-keys`` prints: one ``key: default  # description`` line per key (YAML you can paste)."""
    return "\n".join(f"{name}: {default}  # {doc} ({kind})" for name, kind, default, doc in key_rows(cls)) + "\n"


def trainer_help(prog: str, name: str, cls: type) -> str:
    """What ``rag-retrieval-train <name> --help`` prints: the usage, the command's own options and
    every key of the trainer as a flag, with its type, default and one-line description."""
    summary = " ".join((cls.__doc__ or "").split("\n\n")[0].split()).replace("``", "`")
    own = [
        ("-h, --help", "show this help"),
        ("--config FILE", "YAML file of keys; a --KEY VALUE flag overrides the file"),
        ("--list-keys", "print the keys as YAML you can paste: key: default  # description (type)"),
        ("--debug", "show the full traceback of an error in the input"),
    ]
    lines = [f"usage: {prog} {name} [--config FILE] [--KEY VALUE ...] [--list-keys] [--debug]", "", summary, ""]
    lines += ["options:", *(f"  {flag:<16}{text}" for flag, text in own), ""]
    lines += [f"keys (--KEY VALUE on the command line, KEY: VALUE in the YAML file; {len(key_rows(cls))} keys):"]
    for key, kind, default, doc in key_rows(cls):
        lines.append(f"  --{key} ({kind}; default: {default})")
        lines += textwrap.wrap(doc, width=100, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines) + "\n"


def _table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    lines += [f"| `{name}` | {cell(kind)} | `{cell(default)}` | {cell(doc)} |" for name, kind, default, doc in rows]
    return lines


def _notes(cls: type) -> list[str]:
    """The paragraphs of a config's docstring after its first line, in Markdown (````x```` -> ```x```)."""
    paragraphs = (cls.__doc__ or "").split("\n\n")[1:]
    return [" ".join(p.split()).replace("``", "`") for p in paragraphs if p.strip()]


def trainer_configs() -> dict[str, type[TrainConfig]]:
    """Each ``rag-retrieval-train`` sub-command's config class, in the CLI's order."""
    return {name: load_trainer(name)[0] for name in TRAINERS}


def render() -> str:
    """The Markdown key reference of every trainer."""
    configs = trainer_configs()
    groups: dict[type, tuple[str, str]] = {
        TrainConfig: ("Keys every trainer takes", "keys-every-trainer-takes"),
        LoRAOptions: ("LoRA keys", "lora-keys"),
    }
    for name, cls in configs.items():
        groups.setdefault(cls, (f"`{name}`", name))
    lines = [
        "# Training keys",
        "",
        f"<!-- Generated from the config dataclasses by `{COMMAND}` (`make docs-keys`); do not edit. -->",
        "",
        "Every key goes in the YAML file given with `--config`, or on the command line as `--key value`",
        "(a flag wins over the file). `rag-retrieval-train <trainer> --list-keys` prints the same keys.",
        "",
    ]
    for cls, (title, _) in groups.items():
        lines += [f"## {title}", ""]
        users = [name for name, config in configs.items() if issubclass(config, cls) and config is not cls]
        if cls in (TrainConfig, LoRAOptions):
            lines += [f"Taken by: {', '.join(f'`{u}`' for u in users)}.", ""]
        else:
            also = [f"[{title}](#{anchor})" for base, (title, anchor) in groups.items() if base in cls.__mro__[1:]]
            lines += [f"Also takes: {', '.join(also)} (a key listed here replaces theirs).", ""]
            lines += [f"{paragraph}\n" for paragraph in _notes(cls)]
        lines += [*_table(key_rows(cls, own_only=True)), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
