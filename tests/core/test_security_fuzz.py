"""Property tests: hostile input gives a typed modelyard error or a valid result, never anything else."""

from __future__ import annotations

import io
import json
import math
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard._config import config_to_text, text_to_config
from modelyard._errors import ArchiveError, ConfigError, FormatError, LabelError, ModelyardError
from modelyard._labels import validate_labels
from modelyard._packages import (
    Manifest,
    check_names_unique,
    inspect_zip,
    safe_extract_zip,
    validate_member_name,
)
from modelyard._sniff import FORMATS, sniff_format
from modelyard._weights import validate_safetensors

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that matter to path handling, mixed with ordinary ones.
PATHISH = st.lists(st.sampled_from([*"/\\.:aZé\u0301\x00\n\x7f ~", "..", "C:", "\ud800"]),
                   max_size=30).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=300), PATHISH))
def test_validate_member_name_never_lets_traversal_through(name):
    try:
        result = validate_member_name(name)
    except ArchiveError:
        return
    parts = result.split("/")
    assert ".." not in parts and "" not in parts and "." not in parts
    assert "\\" not in result and ":" not in result and not result.startswith("/")
    assert all(ord(c) >= 0x20 and not 0x7F <= ord(c) < 0xA0 for c in result)
    assert validate_member_name(result) == result  # normalised form is a fixed point


@FUZZ
@given(st.lists(PATHISH, max_size=8))
def test_check_names_unique_is_typed(names):
    try:
        check_names_unique(names)
    except ArchiveError:
        return
    assert len(set(names)) == len(names)


def _write_temp(content: bytes) -> Path:
    handle = tempfile.NamedTemporaryFile(delete=False, suffix=".safetensors")  # noqa: SIM115 - path outlives
    with handle:
        handle.write(content)
    return Path(handle.name)


def _header_file(draw_header: object, data: bytes) -> bytes:
    raw = json.dumps(draw_header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


TENSOR = st.fixed_dictionaries({
    "dtype": st.sampled_from(["U8", "F32", "F4", "BF16", "BOOL", "X"]),
    "shape": st.lists(st.integers(-1, 5), max_size=3),
    "data_offsets": st.lists(st.integers(-1, 40), min_size=0, max_size=3),
})
HEADERS = st.dictionaries(st.sampled_from(["a", "b", "c", "__metadata__"]),
                          st.one_of(TENSOR, st.dictionaries(st.text(max_size=3), st.text(max_size=3))),
                          max_size=4)


@FUZZ
@given(st.one_of(st.binary(max_size=200),
                 st.builds(_header_file, HEADERS, st.binary(max_size=40)),
                 st.builds(lambda h, cut: _header_file(h, b"\0" * 64)[:cut], HEADERS, st.integers(0, 200))))
def test_validate_safetensors_random_bytes(content):
    path = _write_temp(content)
    try:
        try:
            header = validate_safetensors(path)
        except FormatError:
            return
        assert isinstance(header, dict)
        # What we accept, the library can parse too.
        from safetensors import deserialize

        deserialize(content)
        assert sniff_format(path) in FORMATS
    finally:
        path.unlink()


@FUZZ
@given(st.binary(max_size=300))
def test_sniff_format_never_raises(content):
    path = _write_temp(content)
    try:
        assert sniff_format(path) in FORMATS
    finally:
        path.unlink()


YAML_TAGS = ["!!binary", "!!set", "!!python/", "!!bool", "!!int", "!!float", "!!map", "!!seq", "!!omap",
             "!!pairs", "!!null", "!!timestamp"]
YAML_WORDS = ["a", "1", "NaN", ".inf", "<<", "&x", "*x", "2024-01-01", "maybe"]
YAMLISH = st.lists(st.sampled_from([*"{}[]:,-&*!<>|'\"#\n ?%@`.", *YAML_TAGS, *YAML_WORDS]),
                   max_size=40).map("".join)


@FUZZ
@given(st.one_of(st.text(max_size=200), YAMLISH))
def test_text_to_config_is_typed_and_round_trips(text):
    try:
        config = text_to_config(text)
    except ConfigError:
        return
    assert isinstance(config, dict)
    assert text_to_config(config_to_text(config)) == config


JSONISH = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
              st.binary(max_size=3),
              st.sampled_from([np.int8(3), np.float32(math.nan), np.bool_(True), np.complex64(1), object()])),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-2, 2), st.booleans(), st.none(),
                                  st.floats(allow_nan=True)), children, max_size=4),
        st.frozensets(st.integers(), max_size=2),
    ),
    max_leaves=30,
)


@FUZZ
@given(st.dictionaries(st.text(max_size=4), JSONISH, max_size=5))
def test_config_to_text_is_typed_and_exact(config):
    try:
        text = config_to_text(config)
    except ConfigError:
        return
    assert text_to_config(text) == json.loads(text)
    assert config_to_text(text_to_config(text)) == text


@FUZZ
@given(st.one_of(
    st.dictionaries(st.one_of(st.text(max_size=6), st.integers(), st.none()),
                    st.one_of(st.integers(), st.booleans(), st.floats(), st.text(max_size=3),
                              st.integers(-5, 5).map(np.int16), st.just(np.bool_(True))),
                    max_size=6),
    st.lists(st.integers(), max_size=3),
))
def test_validate_labels_is_typed(labels):
    try:
        result = validate_labels(labels)
    except LabelError:
        return
    assert all(type(k) is str and k for k in result) and all(type(v) is int for v in result.values())
    assert len(set(result.values())) == len(result)


@FUZZ
@given(st.one_of(st.text(max_size=200), st.builds(
    lambda files: json.dumps({"format": "modelyard-manifest", "version": 1, "files": files}),
    st.lists(st.fixed_dictionaries({"path": PATHISH, "size": st.one_of(st.integers(-1, 9), st.floats()),
                                    "sha256": st.sampled_from(["0" * 64, "A" * 64, "x"])}), max_size=4))))
def test_manifest_from_json_is_typed(text):
    try:
        manifest = Manifest.from_json(text)
    except ArchiveError:
        return
    assert Manifest.from_json(manifest.to_json()) == manifest


def _valid_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("model.safetensors", b"w" * 300, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("dir/", b"")
        zf.writestr("dir/config.json", b'{"a": 1}')
    return buffer.getvalue()


VALID_ZIP = _valid_zip()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID_ZIP) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, len(VALID_ZIP)))
def test_mutated_zip_gives_archive_error_or_exact_extraction(flips, cut):
    content = bytearray(VALID_ZIP)
    for index, value in flips:
        content[index] = value
    content = content[: max(cut, len(content) - 30)] if cut % 3 == 0 else content
    with tempfile.TemporaryDirectory() as work:
        path = Path(work, "in.zip")
        path.write_bytes(bytes(content))
        try:
            members = inspect_zip(path)
            dest = safe_extract_zip(path, Path(work, "out"))
        except ModelyardError as e:
            assert isinstance(e, ArchiveError)
            assert not Path(work, "out").exists()
            assert sorted(p.name for p in Path(work).iterdir()) == ["in.zip"]
            return
        written = {p.relative_to(dest).as_posix() for p in dest.rglob("*")}
        assert {m.name for m in members} <= written
        for member in members:
            if not member.is_dir:
                assert (dest / member.name).stat().st_size == member.file_size
