"""The ``modelyard`` command: find, inspect, fetch, publish and audit models from a terminal or a script.

One module per command group, over shared helpers:

- :mod:`.common`: exit codes, the group class that turns typed errors into one line and an exit code.
- :mod:`.models`: ``modelyard models ...``.
- :mod:`.tasks`: ``modelyard tasks ...``.
- :mod:`.admin`: ``sync``, ``verify``, ``gc``, ``info``.
- :mod:`.db`: ``modelyard db ...``.

Typed errors become one escaped line on stderr and a documented exit code (see ``EPILOG``); every string
from the registry is printed through :mod:`modelyard._terminal`, which lets no control sequence or rich
markup through.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from .admin import gc_command, info_command, sync_command, verify_command
from .common import (
    EPILOG,
    EXIT_BROKEN_PIPE,
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CommandFailed,
    Group,
    NotFound,
)
from .db import db
from .models import models
from .tasks import tasks

__all__ = ["EPILOG", "EXIT_BROKEN_PIPE", "EXIT_DRIFT", "EXIT_ERROR", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_USAGE",
           "CommandFailed", "NotFound", "cli", "main"]


@click.group(cls=Group, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", package_name="modelyard", prog_name="modelyard",
                      message="%(prog)s %(version)s")
def cli() -> None:
    """Find, inspect, fetch, publish and audit the models in a modelyard registry.

    The registry is the one your training code uses: MODELYARD_REGISTRY_URL, or the SQLite file under
    MODELYARD_HOME. Every listing and show command takes --json for scripts.
    """



for _command in (models, tasks, sync_command, verify_command, gc_command, info_command, db):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run the ``modelyard`` command (the console script's entry point)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="modelyard")
    sys.exit(EXIT_OK)  # pragma: no cover - cli.main exits itself in standalone mode
