"""Config text, labels, format sniffing and safe weight loading (RELIABILITY.md I1, I2, S6, S8)."""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelyard._config import config_to_text, text_to_config, validate_config_text
from modelyard._errors import (
    ConfigError,
    FormatError,
    InvalidArgumentError,
    LabelError,
    MissingDependencyError,
    UnsafeFormatError,
)
from modelyard._labels import labels_from_names, validate_labels
from modelyard._sniff import FORMATS, sniff_format
from modelyard._weights import load_weights, save_safetensors, validate_safetensors

# ---------------------------------------------------------------------------------------------- I1 config


def test_i1_config_round_trip_keeps_order_and_converts_documented_types():
    config = {
        "z": 1,
        "a": {"nested": [1, 2.5, "x", None, True]},
        "tuple": (1, (2, 3)),
        "np_scalars": [np.int64(7), np.float32(0.5), np.bool_(True), np.uint8(3)],
        "np_array": np.arange(4).reshape(2, 2),
        "unicode": "模型 – ü ✓",
        1: "int key",
        2.5: "float key",
        None: "none key",
        False: "bool key",
        "big": 2**100,
    }
    text = config_to_text(config)
    assert text == config_to_text(config)  # deterministic
    back = text_to_config(text)
    assert list(back) == ["z", "a", "tuple", "np_scalars", "np_array", "unicode", "1", "2.5", "null", "false",
                          "big"]
    assert back["tuple"] == [1, [2, 3]]
    assert back["np_scalars"] == [7, 0.5, True, 3]
    assert type(back["np_scalars"][0]) is int and type(back["np_scalars"][2]) is bool
    assert back["np_array"] == [[0, 1], [2, 3]]
    assert back["unicode"] == "模型 – ü ✓" and "模型" in text  # UTF-8 kept, not escaped
    assert back["big"] == 2**100
    assert config_to_text(back) == text  # the converted dict is a fixed point


def test_i1_hundred_levels_of_nesting_are_accepted():
    config: dict = {}
    for _ in range(99):
        config = {"a": config}
    assert text_to_config(config_to_text(config)) == config


def _deep(levels: int) -> dict:
    config: dict = {}
    for _ in range(levels):
        config = {"a": config}
    return config


def _circular_dict() -> dict:
    d: dict = {"a": 1}
    d["self"] = {"back": d}
    return d


def _circular_list() -> dict:
    items: list = [1]
    items.append(items)
    return {"items": items}


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"a": {"b": [1, float("nan")]}}, "config['a']['b'][1]"),
        ({"lr": float("inf")}, "config['lr']"),
        ({"lr": -math.inf}, "infinity"),
        ({"lr": np.float32("nan")}, "NaN"),
        (_circular_dict(), "circular"),
        (_circular_list(), "circular"),
        (_deep(150), "nested more than 100"),
        ({"blob": b"\x00\x01"}, "bytes"),
        ({"blob": bytearray(b"x")}, "bytearray"),
        ({"s": "bad \ud800 surrogate"}, "surrogate"),
        ({"bad \udfff key": 1}, "surrogate"),
        ({1: "a", "1": "b"}, "both become"),
        ({True: "a", "true": "b"}, "both become"),
        ({(1, 2): "tuple key"}, "tuple"),
        ({float("nan"): 1}, "not finite"),
        ({"obj": object()}, "object"),
        ({"set": {1, 2}}, "set"),
        ({"c": 1 + 2j}, "complex"),
        ({"c": np.complex64(1)}, "numpy complex64"),
        ({"arr": np.zeros(10_001)}, "10000 elements"),
        ({"arr": np.array(["a"])}, "dtype <U1"),
        ({"huge": 2**5000}, "4096 bits"),
        ({10**5000: "key beyond the int printing limit"}, "too large to show"),
    ],
)
def test_i1_config_refusals_name_the_problem(config, fragment):
    with pytest.raises(ConfigError) as info:
        config_to_text(config)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)  # ClearML code catches ValueError


@pytest.mark.parametrize("config", [[1, 2], None, "text", 3])
def test_i1_config_top_level_must_be_a_mapping(config):
    with pytest.raises(ConfigError, match="must be a mapping"):
        config_to_text(config)


def test_i1_yaml_text_parses_to_json_like_values():
    text = "a: 1\nwhen: 2024-01-01\nb: [x, 2]\n1: one\nbase: &b {k: v}\nderived:\n  <<: *b\n  k: w\n"
    assert text_to_config(text) == {"a": 1, "when": "2024-01-01", "b": ["x", 2], "1": "one",
                                     "base": {"k": "v"}, "derived": {"k": "w"}}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',
        "a: 1\na: 2\n",
        '{"a": NaN}',
        '{"a": -Infinity}',
        "a: .nan\n",
        "a: !!binary aGVsbG8=\n",
        "[1, 2]",
        '"just a string"',
        "plain words",
        "",
        "a: [unclosed",
        "!!python/object/apply:os.system ['echo hi']",
        "a: !!set {x, y}\n",
        "?\n  [1, 2]\n: x\n",
        "a: !!bool maybe",
        "a: !!map [1]",
        "a: !!int x",
        "a: &x [*x]",
        "&a [*a]: 1",
        "--- a\n--- b",
        "a: 1" + "0" * 5000,
    ],
)
def test_i1_text_to_config_refusals(text):
    with pytest.raises(ConfigError):
        text_to_config(text)


def test_i1_non_mapping_text_is_said_to_be_kept_verbatim():
    with pytest.raises(ConfigError, match="kept verbatim"):
        text_to_config("- a\n- b\n")


def test_i1_yaml_never_executes_code(tmp_path):
    canary = tmp_path / "canary"
    text = f"a: !!python/object/apply:os.mkdir ['{canary}']\n"
    with pytest.raises(ConfigError):
        text_to_config(text)
    assert not canary.exists()


@pytest.mark.parametrize("text", ["[" * 100_000, "{\"a\":" * 100_000, "a:\n" + "- " * 50_000 + "x"])
def test_i1_huge_nesting_is_a_config_error_not_a_crash(text):
    with pytest.raises(ConfigError):
        text_to_config(text)


def test_i1_yaml_alias_bomb_is_bounded():
    # Anchors: each level repeats the previous one ten times, 10**9 leaves in all.
    text = "a0: &r0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 10):
        text += f"a{i}: &r{i} [{', '.join([f'*r{i - 1}'] * 10)}]\n"
    with pytest.raises(ConfigError, match="more than"):
        text_to_config(text)


def test_i1_validate_config_text():
    assert validate_config_text("a: 1") == "a: 1"
    assert validate_config_text("ü: 1".encode()) == "ü: 1"
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        validate_config_text(b"\xff\xfe bad")
    with pytest.raises(ConfigError, match="surrogate"):
        validate_config_text("a \udc80")
    with pytest.raises(ConfigError, match="must be a str"):
        validate_config_text(42)


def test_i1_text_to_config_accepts_bytes_strictly():
    assert text_to_config(b'{"a": 1}') == {"a": 1}
    with pytest.raises(ConfigError, match="UTF-8"):
        text_to_config(b'{"a": "\xff"}')


# ---------------------------------------------------------------------------------------------- I2 labels


def test_i2_labels_accept_ints_and_numpy_ints_and_return_a_new_plain_dict():
    source = {"background": 0, "person": np.int64(1), "car": np.uint8(2), "neg": -1}
    labels = validate_labels(source)
    assert labels == {"background": 0, "person": 1, "car": 2, "neg": -1}
    assert all(type(v) is int for v in labels.values())
    assert labels is not source and type(labels) is dict
    assert list(labels) == list(source)


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ({"cat": True}, "'cat'"),
        ({"cat": np.bool_(False)}, "'cat'"),
        ({"cat": 1.0}, "float"),
        ({"cat": np.float32(1)}, "'cat'"),
        ({"cat": "1"}, "'cat'"),
        ({"cat": None}, "'cat'"),
        ({"": 0}, "non-empty"),
        ({1: 0}, "non-empty string"),
        ({None: 0}, "non-empty string"),
        ({"cat": 0, "dog": 0}, "share the id 0"),
        ({"cat": 0, "dog": np.int32(0)}, "'dog'"),
        ({"ca\x00t": 0}, "control"),
        ({"cat\n": 0}, "control"),
        ({"c\ud800": 0}, "surrogate"),
        ({"cat": 2**63}, "64-bit"),
        ({"cat": 10**5000}, "64-bit"),
        ([("cat", 0)], "mapping"),
        ("cat", "mapping"),
    ],
)
def test_i2_label_refusals_name_the_label(labels, fragment):
    with pytest.raises(LabelError) as info:
        validate_labels(labels)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_i2_labels_from_names():
    assert labels_from_names(["cat", "dog"]) == {"cat": 0, "dog": 1}
    assert labels_from_names(()) == {}
    with pytest.raises(LabelError, match="more than once"):
        labels_from_names(["cat", "cat"])
    with pytest.raises(LabelError, match="list of strings"):
        labels_from_names("cat")
    with pytest.raises(LabelError, match="must be a string"):
        labels_from_names(["cat", 3])


# ---------------------------------------------------------------------------------------------- sniffing


class _Canary:
    """Unpickling this runs os.mkdir(path): the canary appears only if a loader executes pickled code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _st_bytes(header: bytes | dict, data: bytes = b"") -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_sniff_real_safetensors_whatever_the_name(tmp_path):
    save_file({"w": np.ones((2, 3), np.float32)}, tmp_path / "model.bin")
    assert sniff_format(tmp_path / "model.bin") == "safetensors"


def test_sniff_safetensors_whose_length_prefix_looks_like_pickle(tmp_path):
    # A 640-byte header makes the file start 0x80 0x02, a pickle protocol 2 signature.
    header = {"__metadata__": {"pad": ""}, "w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    base = len(json.dumps(header))
    header["__metadata__"]["pad"] = "x" * (640 - base)
    path = _write(tmp_path / "w.safetensors", _st_bytes(header, b"\x01"))
    assert path.read_bytes()[:2] == b"\x80\x02"
    assert sniff_format(path) == "safetensors"
    assert validate_safetensors(path)["w"]["shape"] == [1]


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_sniff_pickle_every_protocol(tmp_path, protocol):
    path = _write(tmp_path / "model.safetensors", pickle.dumps({"w": [1.0, 2.0], "x": None}, protocol))
    assert sniff_format(path) == "pickle"


def test_sniff_torch_formats(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2)}, tmp_path / "a.safetensors")
    torch.save({"w": torch.ones(2)}, tmp_path / "b.bin", _use_new_zipfile_serialization=False)
    assert sniff_format(tmp_path / "a.safetensors") == "torch-zip"
    assert sniff_format(tmp_path / "b.bin") == "pickle"


def _zip(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name in names:
            zf.writestr(name, b"{}")
    return path


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["archive/data.pkl", "archive/version"], "torch-zip"),
        (["data.pkl"], "torch-zip"),
        (["config.json", "metadata.json", "model.weights.h5"], "keras"),
        (["config.json", "model.weights.h5"], "keras"),
        (["config.json", "other.txt"], "zip"),
        (["a/b/data.pkl"], "zip"),
    ],
)
def test_sniff_zip_kinds(tmp_path, names, expected):
    assert sniff_format(_zip(tmp_path / "x.safetensors", names)) == expected


@pytest.mark.parametrize("offset", [0, 512])
def test_sniff_hdf5(tmp_path, offset):
    path = _write(tmp_path / "m.keras", b"\0" * offset + b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert sniff_format(path) == "hdf5"


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"(not a pickle at all", bytes(range(64)),
                                     b"\x80\x09", b"PK"])
def test_sniff_unknown(tmp_path, content):
    assert sniff_format(_write(tmp_path / "model.pt", content)) in FORMATS
    if content in (b"", b"hello world\n", b"(not a pickle at all"):
        assert sniff_format(tmp_path / "model.pt") == "unknown"


# ---------------------------------------------------------------------------------------------- S6 pickle


@pytest.mark.parametrize("name", ["model.safetensors", "model.pt", "model.bin", "model.ckpt", "model.pkl"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_s6_pickle_posing_as_weights_is_refused_and_canary_never_appears(tmp_path, name, protocol):
    canary = tmp_path / "canary"
    path = _write(tmp_path / name, pickle.dumps({"w": _Canary(canary)}, protocol))
    with pytest.raises(UnsafeFormatError, match="allow_unsafe=True"):
        load_weights(path)
    with pytest.raises(UnsafeFormatError):
        load_weights(path, backend="torch")
    assert not canary.exists()


def test_s6_the_canary_payload_is_live(tmp_path):
    # Proves the test above would notice: unpickling the payload really creates the canary.
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(_Canary(canary)))  # noqa: S301 - deliberate, on our own payload
    assert canary.exists()


def test_s6_opt_in_still_goes_through_weights_only(tmp_path):
    pytest.importorskip("torch")
    canary = tmp_path / "canary"
    path = _write(tmp_path / "model.safetensors", pickle.dumps({"w": _Canary(canary)}, 2))
    with pytest.raises(UnsafeFormatError, match="weights-only"):
        load_weights(path, allow_unsafe=True)
    assert not canary.exists()


def test_s6_malicious_torch_zip_refused_even_with_opt_in(tmp_path):
    torch = pytest.importorskip("torch")
    canary = tmp_path / "canary"
    torch.save({"w": torch.ones(1), "evil": _Canary(canary)}, tmp_path / "model.bin")
    assert not canary.exists()
    with pytest.raises(UnsafeFormatError, match="allow_unsafe=True"):
        load_weights(tmp_path / "model.bin")
    with pytest.raises(UnsafeFormatError, match="weights-only"):
        load_weights(tmp_path / "model.bin", allow_unsafe=True)
    assert not canary.exists()


def test_opt_in_loads_plain_torch_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.arange(3.0)}, tmp_path / "m.pt")
    torch.save({"w": torch.arange(3.0)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("m.pt", "legacy.pt"):
        arrays = load_weights(tmp_path / name, allow_unsafe=True)
        assert isinstance(arrays["w"], np.ndarray) and arrays["w"].tolist() == [0.0, 1.0, 2.0]
        tensors = load_weights(tmp_path / name, allow_unsafe=True, backend="torch")
        assert torch.equal(tensors["w"], torch.arange(3.0))


def test_opt_in_without_torch_names_the_install_command(tmp_path, monkeypatch):
    path = _write(tmp_path / "m.pt", pickle.dumps({"w": [1]}, 2))
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install torch==2\.13\.0"):
        load_weights(path, allow_unsafe=True)


# ---------------------------------------------------------------------------------------------- loading


def test_save_and_load_safetensors_round_trip(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([True, False]),
              "t": np.arange(4, dtype=np.int64)[::2]}
    (tmp_path / "out").mkdir()
    path = save_safetensors(arrays, tmp_path / "out" / "m.safetensors", metadata={"epoch": "3"})
    assert sorted(os.listdir(tmp_path / "out")) == ["m.safetensors"]  # no temp file left
    header = validate_safetensors(path)
    assert header["__metadata__"] == {"epoch": "3"}
    loaded = load_weights(path)
    assert set(loaded) == {"w", "b", "t"}
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)


def test_save_safetensors_refuses_bad_input(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidArgumentError):
        save_safetensors({"w": [1, 2]}, out / "m.safetensors")  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError):
        save_safetensors({"w": np.zeros(2)}, out / "m.safetensors", metadata={"a": 1})  # type: ignore
    with pytest.raises(InvalidArgumentError):
        save_safetensors({"w": np.array([object()])}, out / "m.safetensors")
    assert os.listdir(out) == []


def test_bf16_needs_the_torch_backend(tmp_path):
    path = _write(tmp_path / "m.safetensors",
                  _st_bytes({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4))
    with pytest.raises(FormatError, match="backend='torch'"):
        load_weights(path)
    torch = pytest.importorskip("torch")
    assert load_weights(path, backend="torch")["w"].dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("names", "fragment"),
    [(["config.json", "metadata.json", "model.weights.h5"], "keras"), (["a.txt"], "zip")],
)
def test_non_weight_formats_are_format_errors(tmp_path, names, fragment):
    with pytest.raises(FormatError, match=fragment):
        load_weights(_zip(tmp_path / "m.safetensors", names))


def test_unknown_and_hdf5_are_format_errors(tmp_path):
    with pytest.raises(FormatError, match="unknown"):
        load_weights(_write(tmp_path / "m.safetensors", b"just text"))
    with pytest.raises(FormatError, match="hdf5"):
        load_weights(_write(tmp_path / "m.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 16))


def test_unknown_backend_is_refused(tmp_path):
    save_file({"w": np.zeros(1)}, tmp_path / "m.safetensors")
    with pytest.raises(InvalidArgumentError, match="backend"):
        load_weights(tmp_path / "m.safetensors", backend="jax")


# ---------------------------------------------------------------------------------------------- S8


def _tensor(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_s8_valid_headers(tmp_path):
    zero = _write(tmp_path / "zero.safetensors",
                  _st_bytes({"a": _tensor("F32", [0, 3], 0, 0), "b": _tensor("F32", [0], 0, 0),
                             "c": _tensor("F32", [], 0, 4)}, b"\0" * 4))
    assert set(validate_safetensors(zero)) == {"a", "b", "c"}
    assert validate_safetensors(_write(tmp_path / "empty.safetensors", _st_bytes({}))) == {}
    packed = _write(tmp_path / "f4.safetensors", _st_bytes({"q": _tensor("F4", [4], 0, 2)}, b"\0\0"))
    assert validate_safetensors(packed)["q"]["dtype"] == "F4"



@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "truncated"),
        (b"\x10\x00\x00", "truncated"),
        (struct.pack("<Q", 2**40) + b"{}", "exceeds"),
        (struct.pack("<Q", 2**64 - 1) + b"{}", "exceeds"),
        (struct.pack("<Q", 50) + b"{}", "truncated"),
        (_st_bytes(b" {}"), "start with"),
        (_st_bytes(b"{\xff}"), "not UTF-8 JSON"),
        (_st_bytes(b"{not json}"), "not UTF-8 JSON"),
        (_st_bytes(b"{}[]"), "not UTF-8 JSON"),
        (_st_bytes(b'{"a": NaN}'), "NaN"),
        (_st_bytes(b"{" * 100_000), "JSON"),
        (_st_bytes(b'{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},'
                   b' "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}', b"\0\0"),
         "file: the header repeats"),
        (_st_bytes({"a": _tensor("F128", [1], 0, 16)}, b"\0" * 16), "unknown dtype"),
        (_st_bytes({"a": _tensor("F32", [2], 0, 4)}, b"\0" * 4), "does not fill"),
        (_st_bytes({"a": _tensor("F4", [3], 0, 2)}, b"\0" * 2), "does not fill"),
        (_st_bytes({"a": _tensor("U8", [-1], 0, 0)}), "invalid shape"),
        (_st_bytes({"a": _tensor("U8", [True], 0, 1)}, b"\0"), "invalid shape"),
        (_st_bytes({"a": _tensor("U8", [2**62, 2**62], 0, 4)}, b"\0" * 4), "too large for any array"),
        # One rule for dimensions, whether or not another one is zero (#13 item 12: these used to pass and
        # then fail inside numpy's or torch's reshape with a raw ValueError or TypeError).
        (_st_bytes({"a": _tensor("F32", [0, 2**64 - 1], 0, 0)}), "too large for any array"),
        (_st_bytes({"a": _tensor("F32", [0, 2**62], 0, 0)}), "too large for any array"),
        (_st_bytes({"a": _tensor("F32", [2**62, 0], 0, 0)}), "too large for any array"),
        (_st_bytes({"a": _tensor("U8", [2], 2, 0)}, b"\0\0"), "invalid data_offsets"),
        (_st_bytes({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0]}}, b"\0"), "invalid data_offsets"),
        (_st_bytes({"a": {"dtype": "U8", "shape": [1]}}, b"\0"), "invalid data_offsets"),
        (_st_bytes({"a": _tensor("U8", [2], 0, 2)}, b"\0"), "ends at byte 2"),
        (_st_bytes({"a": _tensor("U8", [2], 0, 2), "b": _tensor("U8", [2], 1, 3)}, b"\0" * 3), "overlaps"),
        (_st_bytes({"a": _tensor("U8", [2], 0, 2), "b": _tensor("U8", [2], 0, 2)}, b"\0" * 2), "overlaps"),
        (_st_bytes({"a": _tensor("U8", [2], 1, 3)}, b"\0" * 3), "gap"),
        (_st_bytes({"a": _tensor("U8", [2], 0, 2)}, b"\0" * 3), "cover 2 bytes of a 3-byte"),
        (_st_bytes({"__metadata__": {"k": 1}}), "__metadata__"),
        (_st_bytes({"__metadata__": ["k"]}), "__metadata__"),
        (_st_bytes({"a": [1, 2]}), "not an object"),
        (_st_bytes(b'"string"'), "start with"),
    ],
)
def test_s8_malformed_safetensors_is_a_format_error(tmp_path, content, fragment):
    path = _write(tmp_path / "m.safetensors", content)
    with pytest.raises(FormatError) as info:
        validate_safetensors(path)
    assert fragment in str(info.value)
    assert "m.safetensors" in str(info.value)


def test_s8_zero_element_tensors_load_and_huge_ones_are_a_format_error(tmp_path):
    ok = _write(tmp_path / "ok.safetensors", _st_bytes({"a": _tensor("U8", [0, 2**40], 0, 0)}))
    assert load_weights(ok)["a"].shape == (0, 2**40)  # the largest such shapes numpy builds still load
    for i, shape in enumerate([[0, 2**64 - 1], [0, 2**61], [2**61, 0]]):
        bad = _write(tmp_path / f"bad{i}.safetensors", _st_bytes({"a": _tensor("F32", shape, 0, 0)}))
        with pytest.raises(FormatError, match="too large for any array"):
            load_weights(bad)


def test_s8_truncated_real_file_is_refused_by_load_weights(tmp_path):
    save_file({"w": np.ones(100, np.float32)}, tmp_path / "m.safetensors")
    content = (tmp_path / "m.safetensors").read_bytes()
    _write(tmp_path / "m.safetensors", content[:-10])
    with pytest.raises(FormatError):
        load_weights(tmp_path / "m.safetensors")


def test_leaf_modules_import_no_framework():
    from modelyard.testing import frameworks_imported_by

    leaves = "_config, _labels, _sniff, _weights, _packages, _manifest, _zip, _member_names, _files"
    assert frameworks_imported_by(f"from modelyard import {leaves}") == []
