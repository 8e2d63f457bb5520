"""docs/training-keys.md is generated from the config dataclasses and cannot drift from them."""

from __future__ import annotations

import dataclasses

import pytest
from kit.paths import REPO

from rag_retrieval_train.cli import TRAINERS, main
from rag_retrieval_train.config import key_doc
from rag_retrieval_train.keys_doc import COMMAND, render, trainer_configs

DOC = REPO / "docs" / "training-keys.md"


def test_the_committed_key_reference_is_the_generated_one():
    assert DOC.read_text(encoding="utf-8") == render(), f"docs/training-keys.md is stale: run `{COMMAND}`"


def test_every_key_of_every_trainer_has_a_description():
    for name, cls in trainer_configs().items():
        missing = [f.name for f in dataclasses.fields(cls) if not key_doc(f).strip()]
        assert not missing, f"{name}: keys without a description: {missing}"
    assert set(trainer_configs()) == set(TRAINERS)


@pytest.mark.parametrize("trainer", sorted(TRAINERS))
def test_list_keys_prints_each_key_with_its_default_and_description(trainer, capsys):
    assert main([trainer, "--list-keys"]) == 0
    out = capsys.readouterr().out
    cls = trainer_configs()[trainer]
    for item in dataclasses.fields(cls):
        line = next(line for line in out.splitlines() if line.startswith(f"{item.name}: "))
        assert key_doc(item) in line
    assert len(out.splitlines()) == len(dataclasses.fields(cls))


def test_loss_choices_and_descriptions_come_from_the_loss_tables():
    from rag_retrieval_train.losses.encoder_specs import COLBERT_LOSSES, EMBEDDING_LOSSES
    from rag_retrieval_train.losses.reranker_specs import RERANKER_LOSSES

    doc = render()
    for table in (RERANKER_LOSSES, EMBEDDING_LOSSES, COLBERT_LOSSES):
        for name, spec in table.items():
            assert f"`{name}`: {spec.summary}" in doc
