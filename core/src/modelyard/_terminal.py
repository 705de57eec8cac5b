r"""Terminal-safe output for the ``modelyard`` command: escaping, rich consoles, tables, progress bars, JSON.

Every string read from the registry is untrusted (RELIABILITY.md invariant 1 and S10). :func:`clean` escapes
C0/C1 control characters (ESC and CSI included), bidirectional and invisible format characters and lone
surrogates; :func:`text` wraps the result in a rich ``Text`` printed on a console with markup, emoji and
highlighting off. So a model named ``\x1b[2J`` or ``[blink]x[/blink]`` shows as exactly those characters and
does nothing to the terminal. :func:`print_json` writes ASCII-only JSON: exact, and just as safe to print.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from ._versions import iso_time

#: C0 and C1 controls (ESC, CSI, NUL, newline, ...), DEL, the soft hyphen, bidirectional and invisible
#: format characters that can reorder or hide text, line/paragraph separators, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069"
                     "\ufeff\ufff9-\ufffb\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

#: A byte-progress callback factory: ``start(label, total_bytes)`` returns ``advance(n_bytes)``.
ProgressFactory = Callable[[str, "int | None"], Callable[[int], None]]


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object) -> str:
    r"""Return ``value`` as one line of text that is safe to print to a terminal.

    Control and formatting characters become visible escapes (``\x1b``, ``\n``, ``\u202e``); everything
    else, including rich markup such as ``[red]``, is kept as literal characters.
    """
    string = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape_char, string)


def text(value: object, limit: int | None = None, style: str = "") -> Text:
    """Return a rich ``Text`` (never parsed as markup) of the cleaned value, shortened to ``limit``."""
    if value is None:
        return Text("-", style="dim")
    line = clean(value)
    if limit is not None and len(line) > limit:
        line = line[: limit - 1] + "…"
    return Text(line, style=style)


def block(value: str, indent: str = "  ") -> Text:
    """Return multi-line registry text (config, comment) escaped line by line and indented.

    Newlines are kept so configs stay readable; every line is indented, so a stored line can never pose as
    a line of modelyard's own output.
    """
    lines = value.splitlines() or [""]
    return Text("\n".join(indent + clean(line) for line in lines))


def strings(value: Any) -> list[str]:
    """Return a stored list of strings (tags) defensively: a tampered column yields its text, not a crash."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits 1 here, which the command reserves for "problems found"; the command's own handler
        # stops quietly with the shell's code for a closed pipe instead.
        self.quiet = True
        raise BrokenPipeError


def console(stderr: bool = False) -> Console:
    """Return a rich console on stdout (or stderr) that never interprets markup, emoji or highlighting."""
    stream = sys.stderr if stderr else sys.stdout
    width = None
    if not stream.isatty() and not os.environ.get("COLUMNS"):
        width = 160  # piped output: rows wide enough that grep finds a whole model on one line
    return _Console(file=stream, markup=False, highlight=False, emoji=False, width=width)


def print_json(data: Any) -> None:
    r"""Print ``data`` as indented, ASCII-only JSON: every control character becomes a ``\u`` escape."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=True, default=str))


def note(message: str) -> None:
    """Print a status line to stderr (stdout stays clean for scripts)."""
    click.echo(clean(message), err=True)


def iso(timestamp: Any) -> str | None:
    """Format seconds since the epoch as ISO 8601 UTC (``None`` for a value that is not a time)."""
    return iso_time(timestamp)  # the one format, shared with `ModelVersion.to_dict`


def human(size: Any) -> str:
    """Format a byte count for people (``-`` when unknown)."""
    if not isinstance(size, int) or isinstance(size, bool):
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def short_time(timestamp: Any) -> str | None:
    """Format seconds since the epoch as ``YYYY-MM-DD HH:MM`` UTC, for tables."""
    full = iso(timestamp)
    return None if full is None else f"{full[:10]} {full[11:16]}"


def table(*columns: str, fold: tuple[str, ...] = ()) -> Table:
    """Return a plain table with these column headers; only the ``fold`` columns wrap when space is short."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0),
                header_style="bold")
    for name in columns:
        out.add_column(name, overflow="fold", no_wrap=name not in fold)
    return out


def key_values(out: Console, rows: Iterable[tuple[str, object]], indent: str = "") -> None:
    """Print ``key  value`` lines, aligned, each soft-wrapped so a long URI stays one copyable line."""
    rows = list(rows)
    width = max((len(key) for key, _ in rows), default=0) + 2
    for key, value in rows:
        line = Text(f"{indent}{key:<{width}}", style="bold")
        line.append_text(text(value))
        out.print(line, soft_wrap=True)


@contextmanager
def progress_bars() -> Iterator[ProgressFactory]:
    """Yield a factory of byte-progress callbacks, drawn as rich bars on stderr when it is a terminal."""
    err = console(stderr=True)
    progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), TimeRemainingColumn(), console=err, transient=True,
                        disable=not err.is_terminal)

    def start(label: str, total: int | None) -> Callable[[int], None]:
        task = progress.add_task(clean(label)[:60], total=total)
        return lambda n: progress.advance(task, n)

    with progress:
        yield start
