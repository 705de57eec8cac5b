"""Snapshots: protect a caller's file from later overwrites or deletion while its upload runs (R9)."""

from __future__ import annotations

import os
import shutil

__all__ = ["reflink_or_copy", "snapshot_file"]

_FICLONE = 0x40049409  # linux/fs.h: share extents copy-on-write (btrfs, XFS, overlay on those)


def reflink_or_copy(src: str, dest: str) -> str:
    """Copy ``src`` to a new file ``dest``, sharing extents copy-on-write where the filesystem can.

    Returns:
        ``"reflink"`` or ``"copy"``: what it cost.
    """
    with open(src, "rb") as fin, open(dest, "xb") as fout:
        try:
            import fcntl

            fcntl.ioctl(fout.fileno(), _FICLONE, fin.fileno())
            return "reflink"
        except (ImportError, OSError):
            pass  # not supported here: fall back to a real copy
    # copyfile uses the kernel's zero-copy path (sendfile / copy_file_range) where it can.
    shutil.copyfile(src, dest)
    return "copy"


def snapshot_file(src: str, dest: str, mode: str) -> str:
    """Protect ``src`` from later overwrites or deletion for the duration of its upload.

    Args:
        src: The caller's file.
        dest: Where the snapshot goes (inside a private staging folder).
        mode: ``"link"`` (a hardlink: free, survives deletion and replacement of ``src``, and in-place
            rewrites are detected by fingerprint) or ``"copy"`` (reflink where supported, else a copy:
            survives anything).

    Returns:
        What was done: ``"link"``, ``"reflink"``, ``"copy"``, or ``"none"`` when a link was asked for but
        the staging folder is on another filesystem (the source is then read in place, guarded by its
        fingerprint).
    """
    if mode == "link":
        try:
            os.link(src, dest)
            return "link"
        except OSError:
            return "none"
    return reflink_or_copy(src, dest)
