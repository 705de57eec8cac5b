"""Full disks, big files and bad bytes on the way back (RELIABILITY.md R7, R8, R11).

R7 mounts real, small tmpfs filesystems, which needs root (or CAP_SYS_ADMIN); where mounting is not allowed
the R7 tests skip and say why. R8 uploads sparse files of several hundred MB and samples this process's
resident memory while it does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import modelyard
from modelyard import InputModel, Model, OutputModel, Task
from modelyard._cli import cli
from modelyard._errors import IntegrityError, StorageError, UploadError

MiB = 1024 * 1024


def sha(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_of(path: Path, mib: float, value: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    modelyard.save_safetensors({"w": np.full(int(mib * MiB) // 4, value, np.float32)}, path)
    return path


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if not p.is_dir())


def cache_dir() -> Path:
    return Path(os.environ["MODELYARD_HOME"]) / "cache"


def cached_weights() -> list[Path]:
    """Files in the download cache other than lock files and verification stamps."""
    return [p for p in files_under(cache_dir()) if not p.name.endswith((".lock", ".verified"))]


# -- R7: disk full ---------------------------------------------------------------------------------------


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mount a small tmpfs at a folder for the test; skip when this machine does not allow mounting."""
    mounted: list[Path] = []

    def mount(path: Path, size: str = "2m") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        if shutil.which("mount") is None:
            pytest.skip("R7 needs a real full disk: no `mount` command here")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"R7 needs a real full disk, and mounting a tmpfs is not permitted here (run as root "
                        f"or with CAP_SYS_ADMIN): {result.stderr.strip() or result.returncode}")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_r7_destination_disk_full_fails_loudly_and_leaves_no_partial_object(tmp_path: Path, tmpfs,
                                                                            task: Task) -> None:
    dest = tmpfs(tmp_path / "dest", "2m")
    src = weights_of(tmp_path / "src" / "big.safetensors", 3)
    out = OutputModel(task)
    out.update_weights(str(src), upload_uri=str(dest))
    with pytest.raises(UploadError) as info:
        OutputModel.wait_for_uploads()
    assert "No space left" in info.value.cause
    (version,) = out.versions
    assert version.state == "failed" and "No space left" in version.error
    assert out.url is None
    assert files_under(dest) == []  # not even a temporary file
    assert src.is_file()  # never deleted after a failure


def test_r7_destination_disk_full_in_the_middle_of_a_package(tmp_path: Path, tmpfs, task: Task) -> None:
    dest = tmpfs(tmp_path / "dest", "2m")
    folder = tmp_path / "ckpt"
    weights_of(folder / "a.safetensors", 1.2)  # fits
    weights_of(folder / "b.safetensors", 1.2)  # does not fit beside a
    out = OutputModel(task)
    out.update_weights(str(folder), upload_uri=str(dest))
    with pytest.raises(UploadError, match="No space left"):
        OutputModel.wait_for_uploads()
    assert [v.state for v in out.versions] == ["failed"]
    assert files_under(dest) == []  # the member that fitted went with the failed version
    assert sorted(p.name for p in folder.iterdir()) == ["a.safetensors", "b.safetensors"]


def test_r7_staging_disk_full_fails_in_the_foreground(tmp_path: Path, tmpfs, task: Task) -> None:
    staging = tmpfs(Path(os.environ["MODELYARD_HOME"]) / "staging", "2m")
    src = weights_of(tmp_path / "src" / "big.safetensors", 3)
    out = OutputModel(task)
    with pytest.raises(ValueError, match="No space left"):
        out.update_weights(str(src), auto_delete_file=False)  # a copy snapshot is taken in the call
    assert out.versions == []
    assert files_under(staging) == []
    assert src.is_file()


def test_r7_cache_disk_full_fails_loudly_then_works_once_space_is_back(tmp_path: Path, tmpfs,
                                                                     task: Task) -> None:
    out = OutputModel(task)
    src = weights_of(tmp_path / "src" / "w.safetensors", 3)
    digest = sha(src)
    out.update_weights(str(src))
    OutputModel.wait_for_uploads()
    cache = tmpfs(cache_dir(), "4m")
    ballast = cache / "ballast"
    ballast.write_bytes(b"\0" * (2 * MiB))
    with pytest.raises(ValueError, match="no space left") as info:
        Model(out.id).get_weights(raise_on_error=True)
    assert isinstance(info.value.__cause__, StorageError)
    assert Model(out.id).get_weights() is None
    assert cached_weights() == [ballast]  # no partial download, no unverified file
    ballast.unlink()
    assert sha(Model(out.id).get_weights(raise_on_error=True)) == digest


def test_r7_cache_disk_full_for_a_package(tmp_path: Path, tmpfs, task: Task) -> None:
    folder = tmp_path / "ckpt"
    weights_of(folder / "a.safetensors", 1.5)
    weights_of(folder / "b.safetensors", 1.5)
    out = OutputModel(task)
    out.update_weights(str(folder))
    OutputModel.wait_for_uploads()
    tmpfs(cache_dir(), "2m")
    with pytest.raises(ValueError, match="no space left"):
        Model(out.id).get_weights_package(raise_on_error=True)
    assert cached_weights() == []


def test_r7_models_get_into_a_full_disk(tmp_path: Path, tmpfs, task: Task) -> None:
    out = OutputModel(task)
    out.update_weights(str(weights_of(tmp_path / "src" / "w.safetensors", 3)))
    OutputModel.wait_for_uploads()
    target = tmpfs(tmp_path / "out", "2m")
    result = CliRunner().invoke(cli, ["models", "get", out.id, "-o", str(target)], catch_exceptions=False)
    assert result.exit_code == 4 and "no space left" in result.stderr.lower()
    assert files_under(target) == []


# -- R8: memory stays bounded, whatever the file size ------------------------------------------------------


class PeakRss:
    """Sample this process's resident set size (``VmRSS``) in a thread and keep the peak."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.baseline = self.peak = self.sample()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def sample() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc/self/status")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.sample())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def sparse_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)  # a hole: no disk blocks, reads as zeros
    return path


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read VmRSS")
def test_r8_local_upload_of_a_large_file_keeps_memory_bounded(tmp_path: Path, task: Task) -> None:
    size = 384 * MiB
    src = sparse_file(tmp_path / "src" / "big.bin", size)
    out = OutputModel(task)
    with PeakRss() as rss:
        # A link snapshot of a file we do not own is streamed into the destination chunk by chunk.
        uri = out.update_weights(str(src), upload_uri=str(tmp_path / "dest"), auto_delete_file=False,
                                 snapshot="link")
        OutputModel.wait_for_uploads()
    (version,) = out.versions
    assert version.state == "ready" and version.size == size
    assert version.sha256 == hashlib.sha256(b"\0" * size).hexdigest()
    assert os.path.getsize(uri[len("file://"):]) == size
    # One 8 MiB chunk buffer in flight: what grows must not depend on the file size.
    assert rss.growth < 32 * MiB, f"resident memory grew by {rss.growth / MiB:.0f} MiB for a 384 MiB upload"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read VmRSS")
def test_r8_object_store_multipart_upload_keeps_memory_bounded(tmp_path: Path, task: Task, s3_bucket: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_PART_SIZE", str(5 * MiB))  # many small parts: the smallest S3 allows
    size = 256 * MiB
    src = sparse_file(tmp_path / "src" / "big.bin", size)
    out = OutputModel(task)
    # Warm up first: importing s3fs and creating its client cost memory once, whatever the file size.
    small = sparse_file(tmp_path / "src" / "small.bin", MiB)
    out.update_weights(str(small), upload_uri=f"{s3_bucket}/models", auto_delete_file=False)
    OutputModel.wait_for_uploads()
    with PeakRss() as rss:
        out.update_weights(str(src), upload_uri=f"{s3_bucket}/models", auto_delete_file=False)
        OutputModel.wait_for_uploads()
    version = out.versions[-1]
    assert version.state == "ready" and version.size == size
    # About 40 MiB here (a chunk buffer, one part in s3fs's buffer, the HTTP client), the same for 60 MiB
    # or 400 MiB files: bounded by the part size, not the file size.
    assert rss.growth < 64 * MiB, f"resident memory grew by {rss.growth / MiB:.0f} MiB for a 256 MiB upload"


# -- R11: corrupted or substituted objects on download -----------------------------------------------------


def _corruptions(original: bytes, other: bytes) -> dict[str, bytes]:
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    return {"bit-flip": bytes(flipped), "truncated": original[:-1], "extended": original + b"\0",
            "substituted": other, "empty": b""}


@pytest.mark.parametrize("kind", list(_corruptions(b"xy", b"z")))
def test_r11_corrupted_object_is_an_integrity_error_then_served_after_repair(tmp_path: Path, task: Task,
                                                                            kind: str) -> None:
    out = OutputModel(task)
    uri = out.update_weights(str(weights_of(tmp_path / "src" / "w.safetensors", 0.01, 1.0)))
    OutputModel.wait_for_uploads()
    stored = Path(uri[len("file://"):])
    original = stored.read_bytes()
    other = weights_of(tmp_path / "other.safetensors", 0.01, 2.0).read_bytes()  # valid, same size
    stored.write_bytes(_corruptions(original, other)[kind])

    with pytest.raises(ValueError) as info:
        Model(out.id).get_weights(raise_on_error=True)
    assert isinstance(info.value.__cause__, IntegrityError)
    assert cached_weights() == []  # nothing unverified is kept
    result = CliRunner().invoke(cli, ["models", "get", out.id, "-o", str(tmp_path / "out")])
    assert result.exit_code == 4 and "recorded" in result.stderr
    assert files_under(tmp_path / "out") == []

    stored.write_bytes(original)  # repaired
    path = Model(out.id).get_weights(raise_on_error=True)
    assert Path(path).read_bytes() == original


def test_r11_a_changed_cache_entry_is_discarded_and_fetched_again(tmp_path: Path, task: Task) -> None:
    out = OutputModel(task)
    out.update_weights(str(weights_of(tmp_path / "src" / "w.safetensors", 0.01, 1.0)))
    OutputModel.wait_for_uploads()
    first = Path(Model(out.id).get_weights(raise_on_error=True))
    original = first.read_bytes()
    other = weights_of(tmp_path / "other.safetensors", 0.01, 2.0).read_bytes()
    assert len(other) == len(original) and other != original
    first.write_bytes(other)  # e.g. a caller saving into the path get_weights returned
    again = Path(Model(out.id).get_weights(raise_on_error=True))
    assert again.read_bytes() == original
    first.unlink()  # a deleted cache entry is fetched again too
    assert Path(Model(out.id).get_weights(raise_on_error=True)).read_bytes() == original


def test_r11_corrupted_package_member_is_an_integrity_error_and_not_cached(tmp_path: Path,
                                                                          task: Task) -> None:
    folder = tmp_path / "ckpt"
    weights_of(folder / "a.safetensors", 0.01)
    weights_of(folder / "sub" / "b.safetensors", 0.01)
    out = OutputModel(task)
    uri = out.update_weights(str(folder), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    member = Path(uri[len("file://"):]) / "sub" / "b.safetensors"
    original = member.read_bytes()
    member.write_bytes(original[:-4] + b"evil")
    with pytest.raises(ValueError) as info:
        Model(out.id).get_weights_package(raise_on_error=True)
    assert isinstance(info.value.__cause__, IntegrityError)
    assert [p for p in cached_weights() if p.name != "modelyard-manifest.json"] == []
    member.write_bytes(original)
    files = Model(out.id).get_weights_package(raise_on_error=True)
    assert sorted(p.name for p in files) == ["a.safetensors", "b.safetensors"]


def test_r11_registered_uri_is_trusted_on_first_use_then_verified(tmp_path: Path) -> None:
    weights = weights_of(tmp_path / "theirs" / "w.safetensors", 0.01, 1.0)
    original = weights.read_bytes()
    model = InputModel.import_model(str(weights), name="theirs")
    assert model.versions[0].sha256 is None  # nothing read yet
    assert Path(model.get_weights(raise_on_error=True)).read_bytes() == original
    (version,) = Model(model.id).versions
    assert (version.size, version.sha256) == (len(original), sha(weights))

    weights_of(weights, 0.01, 2.0)  # substituted behind the registry's back
    shutil.rmtree(cache_dir())  # a machine that never downloaded it
    with pytest.raises(ValueError) as info:
        Model(model.id).get_weights(raise_on_error=True)
    assert isinstance(info.value.__cause__, IntegrityError)
    assert cached_weights() == []
    result = CliRunner().invoke(cli, ["models", "get", model.id, "-o", str(tmp_path / "out")])
    assert result.exit_code == 4 and files_under(tmp_path / "out") == []
    assert Model(model.id).versions[0].sha256 == version.sha256  # the first hash stays the reference

    weights.write_bytes(original)
    assert Path(Model(model.id).get_weights(raise_on_error=True)).read_bytes() == original


def test_r11_models_get_records_the_first_hash_too(tmp_path: Path) -> None:
    weights = weights_of(tmp_path / "theirs" / "w.safetensors", 0.01, 1.0)
    model = InputModel.import_model(str(weights), name="theirs")
    result = CliRunner().invoke(cli, ["models", "get", model.id, "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.stderr
    assert Model(model.id).versions[0].sha256 == sha(weights)
    weights_of(weights, 0.01, 2.0)
    assert CliRunner().invoke(cli, ["models", "get", model.id, "-o", str(tmp_path / "out2")]).exit_code == 4


def test_r11_registered_zip_package_is_verified_after_first_use(tmp_path: Path) -> None:
    archive = tmp_path / "theirs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("w.bin", b"123")
    model = InputModel.import_model(str(archive), name="theirs", is_package=True)
    folder = Path(model.get_local_copy(raise_on_error=True))
    assert (folder / "w.bin").read_bytes() == b"123"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("w.bin", b"456")
    shutil.rmtree(cache_dir())
    assert Model(model.id).get_local_copy() is None
