"""Hostile zip archives (RELIABILITY.md S1-S5): refused before any byte is written, nothing partial left."""

from __future__ import annotations

import os
import stat
import struct
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from modelyard._errors import ArchiveError
from modelyard._packages import ZipLimits, inspect_zip, safe_extract_zip

# ---------------------------------------------------------------------------------------------- crafting
# zipfile cannot write every hostile archive (it truncates names at NUL and warns on duplicates), so these
# helpers write the bytes directly.

REGULAR = (stat.S_IFREG | 0o644) << 16


def local_header(name: bytes, payload: bytes, *, method: int = 0, flags: int = 0, crc: int = 0,
                 file_size: int = 0) -> bytes:
    return struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(payload), file_size,
                       len(name), 0) + name + payload


def build_zip(entries: list[dict], *, claimed: int | None = None) -> bytes:
    """Write a zip. Entry keys: name (bytes), data, method, flags, attr, crc, file_size, local, offset."""
    body, central = bytearray(), bytearray()
    for entry in entries:
        name, data = entry["name"], entry.get("data", b"")
        method = entry.get("method", 0)
        if method == 8:
            packer = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = packer.compress(data) + packer.flush()
        else:
            payload = data
        crc = entry.get("crc", zlib.crc32(data))
        file_size = entry.get("file_size", len(data))
        flags = entry.get("flags", 0)
        offset = entry.get("offset", len(body))
        if entry.get("local", True):
            body += local_header(name, payload, method=method, flags=flags, crc=crc, file_size=file_size)
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (3 << 8) | 20, 20, flags, method, 0, 0x21, crc,
                               len(payload), file_size, len(name), 0, 0, 0, 0, entry.get("attr", REGULAR),
                               offset) + name
    count = len(entries) if claimed is None else claimed
    return bytes(body + central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central),
                                              len(body), 0))


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def arena(tmp_path):
    """A zip path, a destination three levels down, and a way to check nothing was written anywhere."""
    root = tmp_path / "arena"  # not tmp_path itself: other fixtures may keep state there
    work = root / "work"
    (work / "a" / "b").mkdir(parents=True)
    zip_path = root / "in.zip"

    class Arena:
        dest = work / "a" / "b" / "out"

        def write(self, content: bytes) -> Path:
            zip_path.write_bytes(content)
            return zip_path

        def refused(self, content: bytes, limits: ZipLimits | None = None, match: str | None = None) -> str:
            limits = limits or ZipLimits()
            path = self.write(content)
            before = snapshot(root)
            with pytest.raises(ArchiveError, match=match) as info:
                inspect_zip(path, limits)
            with pytest.raises(ArchiveError, match=match):
                safe_extract_zip(path, self.dest, limits)
            assert snapshot(root) == before  # nothing written: not dest, not a temp dir, not above
            assert not os.path.lexists(self.dest)
            return str(info.value)

    return Arena()


# ---------------------------------------------------------------------------------------------- S1


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/x", "a/../../x", "..\\x", "C:/x", "C:x", "\\\\host\\share\\x", "//host/share/x", "a/..",
     "./../x", "a//b", "x/", ".", "", "a:b"],
)
def test_s1_zip_traversal_refused(arena, name):
    content = build_zip([{"name": b"ok.txt", "data": b"fine"}, {"name": name.encode(), "data": b"evil"}])
    message = arena.refused(content)
    assert "Nothing was extracted" in message


def test_s1_traversal_made_with_zipfile_refused(arena, tmp_path):
    path = tmp_path / "made.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.safetensors", b"good")
        zf.writestr(zipfile.ZipInfo("../model.safetensors"), b"evil")
    arena.refused(path.read_bytes(), match=r"'\.\.' component")


def test_s1_dotdot_colliding_with_real_name_refused(arena):
    content = build_zip([{"name": b"model.safetensors", "data": b"good"},
                         {"name": b"../model.safetensors", "data": b"evil"}])
    arena.refused(content)
    assert not (arena.dest.parent / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------------- S2


@pytest.mark.parametrize(
    "kind",
    [stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK, 0o110000],
    ids=["symlink", "char-device", "block-device", "fifo", "socket", "unknown-type"],
)
def test_s2_link_and_device_members_refused(arena, kind):
    content = build_zip([{"name": b"ok.txt", "data": b"x"},
                         {"name": b"link", "data": b"/etc/passwd", "attr": (kind | 0o777) << 16}])
    message = arena.refused(content)
    assert "link" in message


def test_s2_symlink_member_made_with_zipfile_refused(arena, tmp_path):
    path = tmp_path / "made.zip"
    info = zipfile.ZipInfo("weights")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(info, "/etc")
        zf.writestr("weights/x", b"through the link")
    arena.refused(path.read_bytes(), match="symbolic link")


def test_s2_type_and_name_must_agree(arena):
    arena.refused(build_zip([{"name": b"d", "attr": (stat.S_IFDIR | 0o755) << 16}]), match="disagree")
    arena.refused(build_zip([{"name": b"d/", "data": b"x", "attr": 0}]), match="with data")


# ---------------------------------------------------------------------------------------------- S3


def test_s3_preplanted_symlink_at_target_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "in.zip").write_bytes(build_zip([{"name": b"model.safetensors", "data": b"x"}]))
    dest = tmp_path / "dest"
    dest.symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArchiveError, match="already exists"):
        safe_extract_zip(tmp_path / "in.zip", dest)
    assert list(outside.iterdir()) == []
    assert dest.is_symlink()


def test_s3_dangling_symlink_and_existing_dir_at_target_refused(tmp_path):
    (tmp_path / "in.zip").write_bytes(build_zip([{"name": b"m", "data": b"x"}]))
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    existing = tmp_path / "existing"
    existing.mkdir()
    for dest in (dangling, existing):
        with pytest.raises(ArchiveError, match="already exists"):
            safe_extract_zip(tmp_path / "in.zip", dest)
    assert not (tmp_path / "nowhere").exists() and list(existing.iterdir()) == []


# ---------------------------------------------------------------------------------------------- S4


def test_s4_high_ratio_member_refused(arena):
    content = build_zip([{"name": b"zeros.bin", "data": bytes(4 << 20), "method": 8}])
    assert len(content) < 10_000
    arena.refused(content, match="zip bomb")
    # The same member is fine under limits that allow the ratio, and extracts exactly.
    path = arena.write(content)
    safe_extract_zip(path, arena.dest, ZipLimits(max_ratio=10_000))
    assert (arena.dest / "zeros.bin").stat().st_size == 4 << 20


def test_s4_total_size_limit(arena):
    content = build_zip([{"name": b"a", "data": b"x" * 600}, {"name": b"b", "data": b"y" * 600}])
    arena.refused(content, ZipLimits(max_total_size=1000), match="over the limit of 1000")


def test_s4_entry_count_limit(arena):
    entries = [{"name": f"f{i}".encode(), "data": b""} for i in range(51)]
    arena.refused(build_zip(entries), ZipLimits(max_entries=50), match="51 entries")
    assert len(inspect_zip(arena.write(build_zip(entries[:50])), ZipLimits(max_entries=50))) == 50


def test_s4_claimed_million_entries_refused_fast(arena):
    # A zip64 end record claiming 1,000,000 entries in front of a tiny directory.
    body = local_header(b"a", b"x", crc=zlib.crc32(b"x"), file_size=1)
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", (3 << 8) | 20, 20, 0, 0, 0, 0x21, zlib.crc32(b"x"), 1,
                          1, 1, 0, 0, 0, 0, REGULAR, 0) + b"a"
    zip64_at = len(body) + len(central)
    content = (body + central
               + struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1_000_000, 1_000_000,
                             len(central), len(body))
               + struct.pack("<4sLQL", b"PK\x06\x07", 0, zip64_at, 1)
               + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    start = time.monotonic()
    arena.refused(content, match="1000000 entries")
    assert time.monotonic() - start < 5


def test_s4_claimed_count_must_match_directory(arena):
    arena.refused(build_zip([{"name": b"a"}], claimed=60_000), match="60000 entries")
    arena.refused(build_zip([{"name": b"a"}, {"name": b"b"}], claimed=1), match="holds 2")


def test_s4_declared_size_smaller_than_actual_refused(arena):
    data = b"0123456789" * 1000
    content = build_zip([{"name": b"ok", "data": b"fine"},
                         {"name": b"liar.bin", "data": data, "method": 8, "file_size": 100}])
    path = arena.write(content)
    assert inspect_zip(path)[1].file_size == 100  # the header alone looks harmless
    before = snapshot(path.parent)
    with pytest.raises(ArchiveError):
        safe_extract_zip(path, arena.dest)
    assert snapshot(path.parent) == before


def test_s4_declared_size_larger_than_actual_refused(arena):
    data = b"abc" * 100
    content = build_zip([{"name": b"short.bin", "data": data, "method": 8, "file_size": 5000}])
    path = arena.write(content)
    before = snapshot(path.parent)
    with pytest.raises(ArchiveError, match="not its declared 5000"):
        safe_extract_zip(path, arena.dest)
    assert snapshot(path.parent) == before


def test_s4_stored_member_with_two_sizes_refused(arena):
    arena.refused(build_zip([{"name": b"a", "data": b"abc", "file_size": 10}]), match="sizes differ")


def test_s4_two_directory_records_for_one_local_header_refused(arena):
    first = {"name": b"a", "data": b"x" * 100}
    arena.refused(build_zip([first, {**first, "local": False, "offset": 0}]), match="the same name")
    renamed = {"name": b"b", "data": b"x" * 100, "local": False, "offset": 0}
    arena.refused(build_zip([first, renamed]), match="disagrees")


def test_s4_overlapping_members_refused(arena):
    # Member b's local header and data sit inside member a's stored data: the Fifield overlapping bomb.
    inner = local_header(b"b", b"y" * 50, crc=zlib.crc32(b"y" * 50), file_size=50)
    content = build_zip([{"name": b"a", "data": inner},
                         {"name": b"b", "data": b"y" * 50, "local": False, "offset": 30 + 1}])
    arena.refused(content, match="overlap")


def test_s4_member_outside_the_archive_refused(arena):
    arena.refused(build_zip([{"name": b"a", "data": b"x", "local": False, "offset": 10_000}]),
                  match="outside the archive")


def test_s4_encrypted_and_unknown_methods_refused(arena):
    arena.refused(build_zip([{"name": b"a", "data": b"x", "flags": 1}]), match="encrypted")
    arena.refused(build_zip([{"name": b"a", "data": b"x", "method": 99}]), match="compression method 99")


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x05\x06" + b"\0" * 10,
                                     build_zip([{"name": b"a", "data": b"x"}])[:-5]])
def test_s4_malformed_archives_refused(arena, content):
    arena.refused(content)


def test_corrupt_member_leaves_nothing_behind(arena):
    content = bytearray(build_zip([{"name": b"good", "data": b"g" * 100},
                                   {"name": b"bad", "data": b"b" * 1000, "method": 8}]))
    content[30 + 4 + 100 + 30 + 3 + 2] ^= 0xFF  # corrupt the deflate stream of "bad"
    path = arena.write(bytes(content))
    inspect_zip(path)
    before = snapshot(path.parent)
    with pytest.raises(ArchiveError):
        safe_extract_zip(path, arena.dest)
    assert snapshot(path.parent) == before


# ---------------------------------------------------------------------------------------------- S5


@pytest.mark.parametrize(
    "names",
    [
        [b"model.bin", b"model.bin"],
        [b"Model.bin", b"model.bin"],
        [b"dir/A.bin", b"DIR/a.bin"],
        ["caf\u00e9.bin".encode(), "cafe\u0301.bin".encode()],
        ["STRASSE", "stra\u00dfe"],
        [b"a", b"a/b"],
        [b"./a", b"a"],
    ],
)
def test_s5_colliding_names_refused_never_last_wins(arena, names):
    entries = [{"name": n if isinstance(n, bytes) else n.encode(), "data": str(i).encode(), "flags": 0x800}
               for i, n in enumerate(names)]
    arena.refused(build_zip(entries))


@pytest.mark.parametrize("name", [b"a\x00b", b"a\nb", b"a\rb", b"\x1b[31mred", b"a\x7f", "a\u0085b".encode(),
                                  b"a\tb"])
def test_s5_control_character_names_refused(arena, name):
    message = arena.refused(build_zip([{"name": name, "data": b"x", "flags": 0x800}]))
    assert "control character" in message


# ---------------------------------------------------------------------------------------------- extraction


def test_safe_extract_writes_exactly_the_members(tmp_path):
    path = tmp_path / "pkg.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.safetensors", b"w" * 5000)
        zf.writestr("tokenizer/vocab.txt", "ü\n".encode())
        zf.writestr("empty/", b"")
        exe = zipfile.ZipInfo("run.sh")
        exe.external_attr = (stat.S_IFREG | stat.S_ISUID | 0o755) << 16
        zf.writestr(exe, b"#!/bin/sh\n")
    dest = safe_extract_zip(path, tmp_path / "new" / "pkg")
    assert dest == tmp_path / "new" / "pkg"
    assert snapshot(dest) == {"model.safetensors", "tokenizer", "tokenizer/vocab.txt", "empty", "run.sh"}
    assert (dest / "model.safetensors").read_bytes() == b"w" * 5000
    assert (dest / "tokenizer" / "vocab.txt").read_text("utf-8") == "ü\n"
    mode = (dest / "run.sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_IXUSR)  # archive modes are never restored
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert sorted(os.listdir(tmp_path / "new")) == ["pkg"]  # no temp directory left


def test_safe_extract_empty_archive(tmp_path):
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    assert list(safe_extract_zip(path, tmp_path / "out").iterdir()) == []


def test_zipfile_would_have_renamed_what_we_refuse(tmp_path):
    # Documents why zipfile.extractall is never used: it silently rewrites hostile names.
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("../../evil.txt"), b"x")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp_path / "zipfile-out")
    assert (tmp_path / "zipfile-out" / "evil.txt").exists()
    with pytest.raises(ArchiveError):
        safe_extract_zip(path, tmp_path / "ours")
