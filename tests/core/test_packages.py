"""Package member names, directory packages and manifests (RELIABILITY.md invariant 3, S5, I3)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from modelyard import _manifest
from modelyard._errors import ArchiveError, InvalidArgumentError
from modelyard._packages import (
    MANIFEST_NAME,
    Manifest,
    ManifestEntry,
    ZipLimits,
    check_names_unique,
    collect_package_files,
    validate_member_name,
)

# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.safetensors", "model.safetensors"),
        ("weights/shard-00001.safetensors", "weights/shard-00001.safetensors"),
        ("./a/./b", "a/b"),
        ("模型/权重.bin", "模型/权重.bin"),
        ("a b/c-d_e.f", "a b/c-d_e.f"),
        ("..a/b..", "..a/b.."),
        ("x" * 255, "x" * 255),
    ],
)
def test_valid_member_names_are_normalised(name, expected):
    assert validate_member_name(name) == expected


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("/etc/x", "absolute"),
        ("//host/share/x", "absolute"),
        ("..\\x", "backslash"),
        ("\\\\host\\share\\x", "backslash"),
        ("a\\b", "backslash"),
        ("C:/x", "':'"),
        ("c:x", "':'"),
        ("file.txt:stream", "':'"),
        ("a//b", "empty component"),
        ("a/", "empty component"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("a\x9bb", "control"),
        ("a\ud800", "surrogate"),
        ("x" * 256, "255 bytes"),
        ("é" * 128, "255 bytes"),
        ("a/" * 2049, "4096"),
        (".", "package root"),
        ("./.", "package root"),
    ],
)
def test_unsafe_member_names_refused(name, fragment):
    with pytest.raises(ArchiveError) as info:
        validate_member_name(name)
    assert fragment in str(info.value)


def test_member_name_must_be_a_string():
    with pytest.raises(ArchiveError, match="not a string"):
        validate_member_name(b"bytes")


def test_directory_names_allow_one_trailing_slash():
    assert validate_member_name("dir/sub/", allow_dir=True) == "dir/sub"
    with pytest.raises(ArchiveError):
        validate_member_name("dir//", allow_dir=True)
    with pytest.raises(ArchiveError):
        validate_member_name("dir/")


def test_check_names_unique():
    check_names_unique(["a", "b/c", "b/d", "B.bin"], ["b"])
    with pytest.raises(ArchiveError, match="the same name"):
        check_names_unique(["a", "a"])
    with pytest.raises(ArchiveError, match="collide"):
        check_names_unique(["Readme.md", "README.md"])
    with pytest.raises(ArchiveError, match="collide"):
        check_names_unique(["caf\u00e9", "cafe\u0301"])
    with pytest.raises(ArchiveError, match="both as a file and as a directory"):
        check_names_unique(["a/b/c", "A/B"])
    with pytest.raises(ArchiveError):
        check_names_unique(["a"], ["a"])  # a file and a directory of the same name
    check_names_unique(iter(["x", "y"]))  # any iterable, consumed once


def test_zip_limits_are_validated():
    assert ZipLimits().max_entries == 10_000
    with pytest.raises(InvalidArgumentError):
        ZipLimits(max_entries=-1)
    with pytest.raises(InvalidArgumentError):
        ZipLimits(max_ratio=True)


# ---------------------------------------------------------------------------------------------- directories


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_i3_exactly_one_source(tmp_path):
    for kwargs in ({}, {"weights_filenames": [tmp_path / "a"], "weights_path": tmp_path}):
        with pytest.raises(InvalidArgumentError, match="exactly one"):
            collect_package_files(**kwargs)


def test_directory_package_lists_relative_posix_names_sorted(tmp_path):
    root = _tree(tmp_path / "pkg", {"b.bin": b"b", "sub/a.bin": b"a", "sub/deeper/c.json": b"{}",
                                    ".hidden": b""})
    files = collect_package_files(weights_path=root)
    assert [name for name, _ in files] == [".hidden", "b.bin", "sub/a.bin", "sub/deeper/c.json"]
    assert all(path.is_absolute() and path.read_bytes() == (root / name).read_bytes() for name, path in files)


def test_directory_package_follows_file_links_inside_only(tmp_path):
    root = _tree(tmp_path / "pkg", {"real.bin": b"r"})
    (root / "alias.bin").symlink_to(root / "real.bin")
    files = dict(collect_package_files(weights_path=root))
    assert files["alias.bin"] == (root / "real.bin").resolve()
    (tmp_path / "secret").write_bytes(b"s")
    (root / "leak.bin").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidArgumentError, match="link to outside"):
        collect_package_files(weights_path=root)


@pytest.mark.parametrize("kind", ["dir-link", "dangling", "fifo"])
def test_directory_package_refuses_other_links_and_special_files(tmp_path, kind):
    root = _tree(tmp_path / "pkg", {"a.bin": b"a"})
    (tmp_path / "elsewhere").mkdir()
    if kind == "dir-link":
        (root / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    elif kind == "dangling":
        (root / "gone.bin").symlink_to(tmp_path / "missing")
    else:
        os.mkfifo(root / "pipe")
    with pytest.raises(InvalidArgumentError, match=r"link|regular file"):
        collect_package_files(weights_path=root)


def test_directory_package_refuses_colliding_and_unsafe_names(tmp_path):
    root = _tree(tmp_path / "case", {"Model.bin": b"1", "model.bin": b"2"})
    with pytest.raises(ArchiveError, match="collide"):
        collect_package_files(weights_path=root)
    root = _tree(tmp_path / "slash", {"a\\b.bin": b"1"})
    with pytest.raises(ArchiveError, match="backslash"):
        collect_package_files(weights_path=root)


def test_directory_package_refuses_empty_and_non_directories(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidArgumentError, match="no files"):
        collect_package_files(weights_path=tmp_path / "empty")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(InvalidArgumentError, match="not a directory"):
        collect_package_files(weights_path=tmp_path / "file")


def test_file_list_package_uses_base_names(tmp_path):
    _tree(tmp_path, {"x/model.safetensors": b"w", "y/config.json": b"{}"})
    files = collect_package_files(weights_filenames=[tmp_path / "y/config.json",
                                                     str(tmp_path / "x/model.safetensors")])
    assert files == [("config.json", (tmp_path / "y/config.json").resolve()),
                     ("model.safetensors", (tmp_path / "x/model.safetensors").resolve())]


def test_file_list_package_refusals(tmp_path):
    _tree(tmp_path, {"x/model.bin": b"1", "y/model.bin": b"2", "y/MODEL.BIN": b"3"})
    with pytest.raises(ArchiveError, match="same name"):
        collect_package_files(weights_filenames=[tmp_path / "x/model.bin", tmp_path / "y/model.bin"])
    with pytest.raises(ArchiveError, match="collide"):
        collect_package_files(weights_filenames=[tmp_path / "x/model.bin", tmp_path / "y/MODEL.BIN"])
    with pytest.raises(InvalidArgumentError, match="missing.bin"):
        collect_package_files(weights_filenames=[tmp_path / "x/model.bin", tmp_path / "missing.bin"])
    with pytest.raises(InvalidArgumentError, match="not a regular file"):
        collect_package_files(weights_filenames=[tmp_path / "x"])
    with pytest.raises(InvalidArgumentError, match="wrap a single file"):
        collect_package_files(weights_filenames=str(tmp_path / "x/model.bin"))
    with pytest.raises(InvalidArgumentError, match="empty"):
        collect_package_files(weights_filenames=[])
    with pytest.raises(InvalidArgumentError, match="not a path"):
        collect_package_files(weights_filenames=[3])


# ---------------------------------------------------------------------------------------------- manifest


def test_manifest_from_files_round_trips(tmp_path):
    root = _tree(tmp_path / "pkg", {"b.bin": b"bb", "a/c.json": b"{}"})
    manifest = Manifest.from_files(collect_package_files(weights_path=root))
    assert [e.path for e in manifest.entries] == ["a/c.json", "b.bin"]
    assert manifest.entries[1] == ManifestEntry("b.bin", 2, hashlib.sha256(b"bb").hexdigest())
    assert manifest.total_size == 4
    text = manifest.to_json()
    assert json.loads(text)["format"] == "modelyard-manifest"
    assert Manifest.from_json(text) == manifest
    assert Manifest.from_json(text.encode()) == manifest
    assert MANIFEST_NAME == "modelyard-manifest.json"


def test_manifest_entries_are_sorted_and_validated_on_construction():
    sha = "0" * 64
    manifest = Manifest((ManifestEntry("z", 1, sha), ManifestEntry("a", 2, sha)))
    assert [e.path for e in manifest.entries] == ["a", "z"]
    with pytest.raises(ArchiveError, match="not normalised"):
        Manifest((ManifestEntry("./a", 1, sha),))
    for size in (2**63, -(10**5000)):
        with pytest.raises(ArchiveError, match="2\\*\\*63"):
            Manifest((ManifestEntry("a", size, sha),))


def _manifest_text(files: object, **top: object) -> str:
    document = {"format": "modelyard-manifest", "version": 1, "files": files, **top}
    return json.dumps(document)


SHA = "ab" * 32


@pytest.mark.parametrize(
    "text",
    [
        _manifest_text([{"path": "../x", "size": 1, "sha256": SHA}]),
        _manifest_text([{"path": "/etc/passwd", "size": 1, "sha256": SHA}]),
        _manifest_text([{"path": "a\\b", "size": 1, "sha256": SHA}]),
        _manifest_text([{"path": "a", "size": 1, "sha256": SHA}, {"path": "A", "size": 1, "sha256": SHA}]),
        _manifest_text([{"path": "a", "size": 1, "sha256": SHA}, {"path": "a", "size": 1, "sha256": SHA}]),
        _manifest_text([{"path": "a", "size": -1, "sha256": SHA}]),
        _manifest_text([{"path": "a", "size": True, "sha256": SHA}]),
        _manifest_text([{"path": "a", "size": 1.0, "sha256": SHA}]),
        _manifest_text([{"path": "a", "size": "1", "sha256": SHA}]),
        _manifest_text([{"path": "a", "size": 1, "sha256": SHA.upper()}]),
        _manifest_text([{"path": "a", "size": 1, "sha256": SHA[:-1]}]),
        _manifest_text([{"path": "a", "size": 1, "sha256": SHA, "extra": 1}]),
        _manifest_text([{"path": "a", "size": 1}]),
        _manifest_text([{"path": 3, "size": 1, "sha256": SHA}]),
        _manifest_text(["a"]),
        _manifest_text({"a": 1}),
        _manifest_text([], extra=1),
        json.dumps({"format": "other", "version": 1, "files": []}),
        json.dumps({"format": "modelyard-manifest", "version": 2, "files": []}),
        json.dumps({"format": "modelyard-manifest", "version": True, "files": []}),
        json.dumps({"format": "modelyard-manifest", "version": 1.0, "files": []}),
        '{"format": "modelyard-manifest", "format": "modelyard-manifest", "version": 1, "files": []}',
        '{"format": "modelyard-manifest", "version": 1, "files": [{"path": "a", "size": NaN, "sha256": 1}]}',
        "[" * 100_000,
        "not json",
        "",
        "[]",
    ],
)
def test_manifest_from_json_treats_text_as_untrusted(text):
    with pytest.raises(ArchiveError):
        Manifest.from_json(text)


def test_manifest_from_json_refuses_bad_bytes_and_types():
    with pytest.raises(ArchiveError, match="UTF-8"):
        Manifest.from_json(b"\xff")
    with pytest.raises(ArchiveError, match="must be text"):
        Manifest.from_json(42)  # type: ignore[arg-type]


def test_manifest_entry_count_is_bounded(monkeypatch):
    monkeypatch.setattr(_manifest, "_MAX_MANIFEST_ENTRIES", 3)
    files = [{"path": f"f{i}", "size": 0, "sha256": SHA} for i in range(4)]
    with pytest.raises(ArchiveError, match="at most 3"):
        Manifest.from_json(_manifest_text(files))
    assert len(Manifest.from_json(_manifest_text(files[:3])).entries) == 3
