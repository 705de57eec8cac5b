"""The upload journal: what one version's upload needs, who owns it, and where its snapshots wait.

A :class:`Job` is built once by the layer that records a version; its :meth:`Job.journal` is stored in the
version row, so a process that dies leaves enough behind for the next one on the machine to finish or fail
the upload. Journals read back are untrusted (RELIABILITY.md S7): `journal_problem` says why one must not run.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from . import _storage
from ._errors import DestinationError
from ._rows import VersionRow
from ._settings import ENV_HOME, hostname

__all__ = ["Job", "JobFile", "fingerprint", "journal_problem", "new_staging_dir", "owner_alive", "owner_token",
           "staging_root"]


@dataclass
class JobFile:
    """One file of a job: where to read it, its name in the package, where it goes."""

    source: str
    name: str
    uri: str
    #: (inode, size, mtime_ns) of ``source`` when it was handed over; a change means a torn source.
    fingerprint: tuple[int, int, int] | None = None


@dataclass
class Job:
    """Everything needed to finish one version's upload, journaled in the registry as JSON.

    Built once, in the caller's thread, by the layer that records the version; its :meth:`journal` is what
    the version row stores, and the same object goes to the workers (never a JSON round trip).
    """

    version_id: int
    model_id: str
    version: int
    uri: str
    file_name: str
    files: list[JobFile]
    package: bool = False
    #: Snapshot files may be renamed into a local destination instead of copied.
    move: bool = False
    #: The caller's files, deleted only after the version is durable (``auto_delete_file=True``).
    delete_after: list[JobFile] = field(default_factory=list)
    #: A private staging folder holding snapshots, removed once the version is settled.
    staging: str | None = None
    registry_url: str = ""
    #: What the submitting layer attached (the recorded version; the journal row for a resumed job). The
    #: engine never reads it and hands it back to observers; not journaled.
    context: object = field(default=None, repr=False, compare=False)

    def journal(self) -> dict[str, Any]:
        """Return the journal entry (JSON-safe: every field but ``context``)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "context"}
        data["files"] = [asdict(f) for f in self.files]
        data["delete_after"] = [asdict(f) for f in self.delete_after]
        return data

    @classmethod
    def from_journal(cls, data: Any) -> Job:
        """Rebuild a journaled job from its (untrusted) journal entry.

        Raises:
            TypeError, ValueError, KeyError, AttributeError: The entry is not a job's journal.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a journal entry is an object, not {type(data).__name__}")
        data = {**data, "files": [_job_file(f) for f in data["files"]],
                "delete_after": [_job_file(f) for f in data["delete_after"]]}
        data.pop("context", None)
        return cls(**data)

    @property
    def total_size(self) -> int:
        """Bytes this job still has to move (best effort)."""
        total = 0
        for f in self.files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(f.source)
        return total


def _job_file(data: Any) -> JobFile:
    if not isinstance(data, dict):
        raise TypeError(f"a journaled file is an object, not {type(data).__name__}")
    print_ = data.get("fingerprint")
    return JobFile(**{**data, "fingerprint": tuple(print_) if print_ else None})


def fingerprint(path: str) -> tuple[int, int, int]:
    """Return what identifies a file's content cheaply: inode, size and modification time."""
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)



def _process_start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Field 22 (start time) follows the parenthesised command name, which may contain spaces.
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return "?"


def owner_token() -> str:
    """Return this process's journal owner token: host, pid and process start time."""
    pid = os.getpid()
    return f"{hostname()}|{pid}|{_process_start_time(pid)}"


def owner_alive(token: str | None) -> bool:
    """Tell whether the process that owns a journaled version is still running on this machine."""
    if not token:
        return False
    try:
        host, pid_text, start = token.split("|")
        pid = int(pid_text)
    except ValueError:
        return False
    if host != hostname():
        return True  # another machine's work; never ours to take
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return start == "?" or _process_start_time(pid) == start


_staging_roots: set[str] = set()


def staging_root() -> str:
    """Return the folder that holds this machine's private staging folders."""
    return os.path.abspath(os.path.join(os.path.expanduser(os.environ.get(ENV_HOME) or "~/.modelyard"),
                                        "staging"))


def journal_problem(job: Job, row: VersionRow, destinations: list[str]) -> str | None:
    """Tell why a journaled job read back from the registry must not run (``None`` when it may).

    The journal is a registry field like any other, so it is untrusted (RELIABILITY.md S7): a resumed job may
    only upload a snapshot in its own staging folder (or a source whose fingerprint still matches) to its
    version's own object key, remove that staging folder, and delete only fingerprinted files.

    Returns:
        What is wrong, as a phrase ("points outside ..."), or ``None``.
    """
    if (job.model_id, job.version, job.uri) != (row.model_id, row.version, row.uri):
        return "does not match its version row"
    try:
        _storage.check_confined(job.uri, destinations)
    except DestinationError as e:
        return f"points outside the destinations ({e})"
    if _storage.owning_model(job.uri, destinations) != job.model_id:
        return "points outside its model's own folder"
    expected = [_storage.member_uri(job.uri, f.name) if job.package else job.uri for f in job.files]
    if not job.files or (not job.package and len(job.files) != 1) or [f.uri for f in job.files] != expected:
        return "writes objects other than its version's own"
    staging = None
    if job.staging is not None:
        root = os.path.realpath(staging_root())
        staging = os.path.realpath(job.staging)
        if staging != os.path.join(root, os.path.basename(staging)) or \
                not re.fullmatch(r"[0-9a-f]{32}", os.path.basename(staging)):
            return f"names a staging folder {job.staging!r} that is not one of this machine's"
    for f in job.files:
        snapshot = staging is not None and os.path.dirname(os.path.realpath(f.source)) == staging
        if f.fingerprint is None and not snapshot:
            return f"reads {f.source!r}, which is neither its snapshot nor fingerprinted"
    if any(f.fingerprint is None for f in job.delete_after):
        return "would delete a file without checking its fingerprint"
    return None


def new_staging_dir() -> str:
    """Create a private staging folder for one version's snapshots."""
    root = staging_root()
    if root not in _staging_roots:
        os.makedirs(root, mode=0o700, exist_ok=True)
        _staging_roots.add(root)
    path = os.path.join(root, uuid.uuid4().hex)
    os.mkdir(path, mode=0o700)
    return path
