"""Run the ``modelyard`` command as ``python -m modelyard``."""

from modelyard._cli import main

if __name__ == "__main__":
    main()
