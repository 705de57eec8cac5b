"""What is recorded: scrubbed arguments, labels from a config, the files a package leaves out."""

from __future__ import annotations

import fnmatch
from enum import Enum
from types import SimpleNamespace

import pytest

import modelyard
from modelyard_transformers._capture import excluded_files, labels_from_config, scrub_arguments


class Strategy(Enum):
    STEPS = "steps"


def test_scrub_removes_every_secret_field_at_any_depth() -> None:
    token = "hf_" + "a1" * 20
    args = {
        "hub_token": token, "push_to_hub_token": token, "api_key": "k", "aws_secret_access_key": "s",
        "db_password": "p", "Authorization": "Bearer x", "credentials_file": "/c.json",
        "fsdp_config": {"nested": {"private_key": "pem", "keep": 1}},
        "report_to": ["wandb"], "run_name": "run", "note": f"uses {token}", "remote": "s3://u:pw@host/b",
        "strategy": Strategy.STEPS, "inf": float("inf"), "tuple": (1, 2), "obj": object,
    }
    scrubbed = scrub_arguments(args)
    assert set(scrubbed) == {"fsdp_config", "report_to", "run_name", "strategy", "inf", "tuple", "obj"}
    assert scrubbed["fsdp_config"] == {"nested": {"keep": 1}}
    assert scrubbed["strategy"] == "steps" and scrubbed["inf"] == "inf" and scrubbed["tuple"] == [1, 2]
    assert isinstance(scrubbed["obj"], str)
    assert token not in repr(scrubbed)


def test_scrubbed_arguments_are_json_safe_for_the_registry() -> None:
    scrubbed = scrub_arguments({"a": float("nan"), "b": {1: {2: [float("-inf")]}}, "c": None})
    out = modelyard.OutputModel(modelyard.Task.init(project_name="p", task_name="t"), config_dict=scrubbed)
    assert out.config_dict == {"a": "nan", "b": {"1": {"2": ["-inf"]}}, "c": None}


@pytest.mark.parametrize(("id2label", "label2id", "expected"), [
    ({0: "cat", 1: "dog"}, None, {"cat": 0, "dog": 1}),
    ({"0": "cat", "1": "dog"}, None, {"cat": 0, "dog": 1}),  # ids as JSON keys
    (None, {"cat": 0, "dog": 1}, {"cat": 0, "dog": 1}),
    ({0: "LABEL_0", 1: "LABEL_1"}, {"LABEL_0": 0, "LABEL_1": 1}, None),  # transformers' placeholders
    ({0: "LABEL_1", 1: "LABEL_0"}, None, {"LABEL_1": 0, "LABEL_0": 1}),  # not the placeholders: meaningful
    ({}, {}, None),
    (None, None, None),
])
def test_labels_from_config(id2label: object, label2id: object, expected: dict[str, int] | None) -> None:
    assert labels_from_config(SimpleNamespace(id2label=id2label, label2id=label2id)) == expected
    assert labels_from_config(None) is None


def test_labels_from_config_refuses_ambiguous_names() -> None:
    with pytest.raises(modelyard.LabelError, match="label_enumeration"):
        labels_from_config(SimpleNamespace(id2label={0: "cat", 1: "cat"}, label2id=None))


def _kept(names: list[str], include_training_state: bool) -> list[str]:
    patterns = excluded_files(include_training_state)
    return [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def test_excluded_files() -> None:
    names = ["config.json", "generation_config.json", "model.safetensors", "model-00001-of-00002.safetensors",
             "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
             "special_tokens_map.json", "preprocessor_config.json", "spiece.model", "optimizer.pt",
             "scheduler.pt", "scaler.pt", "rng_state.pth", "rng_state_1.pth", "trainer_state.json",
             "training_args.bin", "pytorch_model.bin", "global_step4/mp_rank_00_model_states.pt", "latest",
             "zero_to_fp32.py", "pytorch_model_fsdp_0/__0_0.distcp", "optimizer_0/__0_0.distcp"]
    assert _kept(names, include_training_state=True) == [n for n in names if n != "training_args.bin"]
    assert _kept(names, include_training_state=False) == names[:11]
