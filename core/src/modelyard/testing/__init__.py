"""Test support for modelyard and its integrations: state reset, fault injection, the contract suite.

Import-light: nothing here imports a framework at module level.
"""

from __future__ import annotations

from ._state import isolated_state, reset_state

__all__ = ["isolated_state", "reset_state"]
