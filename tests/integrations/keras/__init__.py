import os

import pytest

# Keras reads its backend once, at its first import, which `importorskip` below may be: CI tests the torch
# backend (the tox env `keras-jax` sets KERAS_BACKEND=jax for local runs).
os.environ.setdefault("KERAS_BACKEND", "torch")

pytest.importorskip("keras")
