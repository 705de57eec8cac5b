"""Weight-file format sniffing: the format comes from magic bytes, never from a name or a stored field.

A leaf module: it imports only the standard library (RELIABILITY.md invariant 2, S6, S7).
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile

from modelyard._files import StrPath

__all__ = ["FORMATS", "MAX_SAFETENSORS_HEADER", "sniff_format"]

#: Every value :func:`sniff_format` can return.
FORMATS = ("safetensors", "pickle", "torch-zip", "keras", "zip", "hdf5", "unknown")
#: The safetensors library's own limit on the JSON header.
MAX_SAFETENSORS_HEADER = 100_000_000

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock; the superblock then sits at one of these offsets.
_HDF5_OFFSETS = (0, 512, 1024, 2048)
# Opcodes a protocol 0/1 pickle (or a legacy torch file) starts with: MARK, EMPTY_DICT, EMPTY_LIST,
# EMPTY_TUPLE, GLOBAL, NONE, PROTO is handled separately.
_PICKLE_V0_FIRST = b"(}])cN"


def _looks_like_pickle(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80:
        return 2 <= head[1] <= 5
    if not head or head[0] not in _PICKLE_V0_FIRST:
        return False
    # Parse (never execute) the opcodes of the first bytes: text that merely starts with "(" fails quickly.
    count = 0
    try:
        for opcode, _, _ in pickletools.genops(io.BytesIO(head)):
            count += 1
            if opcode.name == "STOP" or count >= 4:
                return True
    except Exception:  # any parse failure of hostile bytes just means "not a pickle"
        return False
    return False


def _zip_kind(path: StrPath) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = {info.orig_filename for info in zf.infolist()}
    except Exception:  # a zip signature with a broken directory is still "zip", never loaded
        return "zip"
    if any(n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1) for n in names):
        return "torch-zip"
    if "config.json" in names and names & {"model.weights.h5", "metadata.json"}:
        return "keras"
    return "zip"


def sniff_format(path: StrPath) -> str:
    """Detect a weights file's format from its magic bytes (never from its name or metadata).

    Args:
        path: The file.

    Returns:
        One of :data:`FORMATS`: ``"safetensors"``, ``"pickle"`` (including legacy ``torch.save`` files),
        ``"torch-zip"`` (``torch.save``'s zip format), ``"keras"`` (a Keras 3 ``.keras`` archive), ``"zip"``,
        ``"hdf5"`` or ``"unknown"``.

    Raises:
        OSError: The file cannot be read.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(4096)
        # safetensors first: its 8-byte length prefix can start with 0x80 0x02, like a pickle.
        if len(head) >= 10 and head[8:9] == b"{":
            n = int.from_bytes(head[:8], "little")
            if 2 <= n <= MAX_SAFETENSORS_HEADER and 8 + n <= size:
                start = 8 + max(1, n - 64)  # the header's last bytes (padded with spaces) must close it
                f.seek(start)
                if f.read(8 + n - start).rstrip(b" ").endswith(b"}"):
                    return "safetensors"
        if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            return _zip_kind(path)
        for offset in _HDF5_OFFSETS:
            f.seek(offset)
            if f.read(8) == _HDF5_MAGIC:
                return "hdf5"
    return "pickle" if _looks_like_pickle(head) else "unknown"

