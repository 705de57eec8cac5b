"""Look at what a run left in local storage and in the output folder."""

from __future__ import annotations

from pathlib import Path


def stored_versions(home: Path, model_id: str) -> set[int]:
    """Return the version numbers that still have bytes in ``$MODELYARD_HOME/storage``.

    A removed version can leave its emptied ``<version>/`` folder behind on a local filesystem: only files
    count.
    """
    found = set()
    for models in (home / "storage").rglob(f"models/{model_id}"):
        found |= {int(p.name) for p in models.iterdir()
                  if p.is_dir() and p.name.isdigit() and any(f.is_file() for f in p.rglob("*"))}
    return found


def local_checkpoints(output_dir: Path) -> set[str]:
    """Return the names of the ``checkpoint-N`` folders the Trainer kept."""
    return {p.name for p in output_dir.iterdir() if p.is_dir() and p.name.startswith("checkpoint-")}
