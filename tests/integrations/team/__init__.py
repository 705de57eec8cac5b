import pytest

pytest.importorskip("torch")
pytest.importorskip("lightning")
pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # the Trainer needs it on PyTorch
