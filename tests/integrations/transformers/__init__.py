import pytest

pytest.importorskip("transformers")
pytest.importorskip("torch")
pytest.importorskip("accelerate")  # the Trainer needs it on PyTorch
