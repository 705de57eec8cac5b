"""What every ``modelyard`` command shares: exit codes, the error-to-exit-code group, registry access.

Typed errors become one escaped line on stderr and a documented exit code (see ``EPILOG``); every string
from the registry is printed through :mod:`modelyard._terminal`, which lets no control sequence or rich
markup through.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click
import sqlalchemy as sa

from modelyard import _terminal as term
from modelyard._errors import ModelyardError, NotFoundError
from modelyard._registry import Registry, get_registry

EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_ERROR = 4
#: 128 + SIGPIPE, what a shell reports for a writer whose reader went away.
EXIT_BROKEN_PIPE = 141

EPILOG = """\b
Exit codes:
  0  success
  1  problems found: `verify` found drift, or a journaled upload failed in `sync`
  2  usage error (unknown command or option, bad value)
  3  not found: no such model, task or version
  4  any other error (published model, integrity error, storage or registry failure)

\b
Environment: MODELYARD_HOME (default ~/.modelyard), MODELYARD_REGISTRY_URL,
MODELYARD_DEFAULT_OUTPUT_URI. Documentation: docs/cli.md."""

# -- errors -----------------------------------------------------------------------------------------


class CommandFailed(click.ClickException):
    """A modelyard error, shown as one escaped line on stderr; exit code 4."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(term.clean(message))


class NotFound(CommandFailed):
    """No such model, task or version; exit code 3."""

    exit_code = EXIT_NOT_FOUND


def describe(error: BaseException) -> str:
    """Return a one-line description of an error, without SQL statements or parameters."""
    if isinstance(error, sa.exc.SQLAlchemyError):
        # The driver's message, without the SQL statement and parameters SQLAlchemy appends.
        orig = getattr(error, "orig", None)
        return f"registry error: {orig if orig is not None else type(error).__name__}"
    if isinstance(error, OSError) and not isinstance(error, ModelyardError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error) or type(error).__name__


class Group(click.Group):
    """A click group that turns modelyard's typed errors into one line and a documented exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`modelyard models list | head`): stop quietly, as shell tools do. Click
            # would exit 1 here, which this command reserves for "problems found".
            silence_stdout()
            raise click.exceptions.Exit(EXIT_BROKEN_PIPE) from None
        except NotFoundError as e:
            raise NotFound(describe(e)) from e
        except (ModelyardError, ValueError, OSError, sa.exc.SQLAlchemyError) as e:
            raise CommandFailed(describe(e)) from e
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            raise click.exceptions.Exit(130) from None
        except Exception as e:
            # Not a typed error: a bug. Show where it happened, but keep the documented exit code.
            traceback.print_exc()
            raise CommandFailed(f"unexpected {type(e).__name__}: {e} (this is a bug in modelyard; please "
                                "report it with the traceback above)") from e



def open_registry() -> Registry:
    """Return the registry the training code uses (``MODELYARD_REGISTRY_URL`` or the embedded SQLite file)."""
    return get_registry()


def silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail on the closed pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass  # not a real file descriptor (a test runner's buffer): nothing will flush to a dead pipe

