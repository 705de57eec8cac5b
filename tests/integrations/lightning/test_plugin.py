"""The Lightning integration as a modelyard plugin: discovered through its entry point, import-light."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import modelyard
from modelyard import UnknownIntegrationError
from modelyard.testing import FRAMEWORK_MODULES as FRAMEWORKS
from modelyard.testing import reset_state


def test_both_namespaces_are_registered() -> None:
    integrations = modelyard.available_integrations()
    assert integrations["lightning"].startswith("modelyard-lightning 0.1.0")
    assert integrations["pytorch_lightning"].startswith("modelyard-lightning")
    import modelyard_lightning

    assert modelyard.get_callback_class("lightning") is modelyard_lightning.ModelyardCallback
    pytest.importorskip("pytorch_lightning")
    from modelyard_lightning.pytorch_lightning import ModelyardCallback

    assert modelyard.get_callback_class("pytorch_lightning") is ModelyardCallback


def test_disabling_the_plugin_hides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELYARD_DISABLE_PLUGINS", "lightning")
    reset_state()
    assert "lightning" not in modelyard.available_integrations()
    assert "pytorch_lightning" not in modelyard.available_integrations()
    with pytest.raises(UnknownIntegrationError, match="pip install modelyard-lightning"):
        modelyard.get_callback_class("lightning")


def test_an_unknown_integration_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownIntegrationError) as info:
        modelyard.get_callback_class("lightnin")
    message = str(info.value)
    assert "'lightnin'" in message
    installed = message.split("installed: ", 1)[1].split(")", 1)[0].split(", ")
    assert {"lightning", "pytorch_lightning"} <= set(installed)


def _modules_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                         timeout=120)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_discovery_imports_no_framework() -> None:
    # pluggy imports every plugin's entry-point module at discovery: it must not drag torch or Lightning in.
    assert _modules_after("import modelyard; modelyard.available_integrations()") == []
    assert _modules_after("import modelyard_lightning._plugin") == []


def test_the_package_imports_lightning_only_for_the_callback() -> None:
    # The read helpers and the pytorch_lightning variant work without `lightning` imported.
    assert _modules_after("import modelyard_lightning") == []
    assert "lightning" in _modules_after("from modelyard_lightning import ModelyardCallback")


def test_a_missing_framework_says_what_to_install() -> None:
    code = ("import sys; sys.modules['lightning'] = None; sys.modules['lightning.pytorch'] = None\n"
            "import modelyard\n"
            "try:\n    modelyard.get_callback_class('lightning')\n"
            "except modelyard.IntegrationImportError as e:\n"
            "    print(type(e.__cause__).__name__, '|', e.__cause__)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         timeout=120)
    assert "MissingDependencyError" in out.stdout and "pip install modelyard-lightning" in out.stdout
