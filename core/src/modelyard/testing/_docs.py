"""Run the Python blocks of a Markdown page as one script, in order: documentation that is tested.

One runner for the core pages and every integration's page, so a broken example always fails the same way:
naming the page, the block and the error, with the block's source.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["python_blocks", "run_python_blocks"]

_BLOCK = re.compile(r"```python\n(.*?)```", flags=re.S)


def python_blocks(page: str | os.PathLike[str]) -> list[str]:
    """Return the source of each fenced ```` ```python ```` block of a Markdown page, in order."""
    return _BLOCK.findall(Path(page).read_text(encoding="utf-8"))


def run_python_blocks(page: str | os.PathLike[str], namespace: Mapping[str, Any] | None = None, *,
                      min_blocks: int = 1, on_its_own: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Execute a page's Python blocks in order in one namespace, as a reader pasting them would.

    Args:
        page: The Markdown file.
        namespace: What the page assumes the reader already has (their model, data, ...).
        min_blocks: Fail unless the page has at least this many blocks (a page losing its examples is a bug).
        on_its_own: Blocks for which this returns true run in a copy of the namespace, so they neither see
            nor change the sequence (for example a variant of an earlier block for another package).

    Returns:
        The namespace after the last block, to assert on what the page promised.

    Raises:
        AssertionError: The page has too few blocks, or a block raised (the message names the block).
    """
    name = Path(page).name
    blocks = python_blocks(page)
    assert len(blocks) >= min_blocks, f"{name} has {len(blocks)} python blocks, expected at least {min_blocks}"
    scope: dict[str, Any] = {"__name__": f"docs_{Path(page).stem}", **(namespace or {})}
    for i, block in enumerate(blocks):
        target = dict(scope) if on_its_own is not None and on_its_own(block) else scope
        try:
            exec(compile(block, f"{name}[block {i}]", "exec"), target)  # noqa: S102 - our own docs
        except Exception as e:
            raise AssertionError(f"{name} block {i} failed: {type(e).__name__}: {e}\n{block}") from e
    return scope
