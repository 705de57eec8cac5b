"""The entry point is import-light; the integration is discoverable; a missing framework says what to do."""

from __future__ import annotations

import subprocess
import sys

import modelyard
from modelyard.testing import FRAMEWORK_MODULES
from modelyard_transformers import ModelyardCallback

FRAMEWORKS = (*FRAMEWORK_MODULES, "accelerate")  # what the Trainer needs, loaded only when used


def test_plugin_and_package_import_no_framework() -> None:
    code = (
        "import sys, modelyard, modelyard_transformers, modelyard_transformers._plugin\n"
        "from modelyard_transformers import checkpoint_path, from_registry\n"
        "print(modelyard.available_integrations())\n"
        f"loaded = [m for m in {FRAMEWORKS!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "'transformers': 'modelyard-transformers 0.1.0'" in result.stdout


def test_integration_is_discoverable_by_name() -> None:
    assert modelyard.get_callback_class("transformers") is ModelyardCallback
    assert "transformers" in modelyard.available_integrations()


def test_missing_transformers_fails_at_use_with_the_install_command() -> None:
    code = (
        "import sys\n"
        "sys.modules['transformers'] = None  # as if not installed\n"
        "import modelyard_transformers\n"
        "try:\n"
        "    modelyard_transformers.ModelyardCallback\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e, '| cause:', type(e.__cause__).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "MissingDependencyError" in result.stdout
    assert "pip install modelyard-transformers" in result.stdout
    assert "cause: ModuleNotFoundError" in result.stdout
