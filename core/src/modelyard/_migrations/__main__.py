"""Developer commands for the registry's Alembic revisions: ``python -m modelyard._migrations --help``.

Users never need this: ``modelyard db upgrade`` applies the revisions. A developer changing the schema starts
a revision with ``python -m modelyard._migrations revision -m "add aliases" [--autogenerate]`` (autogenerate
compares `modelyard._schema` against the database of ``MODELYARD_REGISTRY_URL``, which must be at the head)
and checks the revisions against the tables with ``python -m modelyard._migrations check``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from modelyard import _engine
from modelyard._settings import registry_url

from . import alembic_config, known_revisions


def main(argv: Sequence[str] | None = None) -> int:
    """Run a developer command; return the exit status."""
    from alembic import command

    parser = argparse.ArgumentParser(prog="python -m modelyard._migrations", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    revision = commands.add_parser("revision", help="start a new revision file in versions/")
    revision.add_argument("-m", "--message", required=True)
    revision.add_argument("--autogenerate", action="store_true",
                          help="fill it from the difference between modelyard._schema and the database")
    commands.add_parser("check", help="fail when modelyard._schema differs from the database at the head")
    commands.add_parser("history", help="list the revisions, newest first")
    args = parser.parse_args(argv)
    if args.command == "history":
        print("\n".join(known_revisions()))
        return 0
    cfg = alembic_config()
    engine = _engine.make_engine(registry_url())
    try:
        with _engine.write(engine) as conn:
            cfg.attributes["connection"] = conn
            if args.command == "check":
                command.check(cfg)
            else:
                # Numbered ids ("0002"), so that the files sort in the order they apply.
                rev_id = f"{int(known_revisions()[0]) + 1:04d}"
                command.revision(cfg, message=args.message, autogenerate=args.autogenerate, rev_id=rev_id)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
