"""Integration tests, one package per framework.

This file makes ``tests/integrations`` a package so that pytest imports ``tests/integrations/lightning`` as
``integrations.lightning`` rather than as a top-level ``lightning`` package, which would shadow the real one
(and likewise for ``keras`` and ``transformers``).
"""
