"""Tests of modelyard-lightning: real Trainer runs on tiny models, on the CPU."""

import pytest

pytest.importorskip("torch", reason="modelyard-lightning tests need torch: pip install torch")
pytest.importorskip("lightning", reason="modelyard-lightning tests need lightning: pip install lightning")
pytest.importorskip("modelyard_lightning", reason="pip install -e integrations/lightning")
