"""The plugin contract: discovery from installed distributions, blocking, vetoes and typed notifications.

Discovery is tested against fake installed distributions: a ``*.dist-info`` folder with ``METADATA`` and
``entry_points.txt`` beside the plugin's module, in a folder put on ``sys.path``. ``importlib.metadata`` reads
it exactly as it reads a pip-installed distribution, so nothing is installed into the test environment.
Every test gets a fresh plugin manager (the root conftest resets modelyard's state around each test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pluggy
import pytest

import modelyard
from modelyard import (
    IntegrationImportError,
    Model,
    ModelVersion,
    OutputModel,
    Task,
    UnknownIntegrationError,
    UploadError,
    hookimpl,
)
from modelyard._jobs import staging_root
from modelyard._plugins import PluginManager, get_plugin_manager, set_plugin_manager
from modelyard._registry import get_registry
from modelyard.testing import reset_state
from modelyard.testing.faults import FaultPlan, FaultyFileSystem

FRAMEWORKS = ("torch", "keras", "lightning", "pytorch_lightning", "transformers", "tensorflow", "jax")


def fake_distribution(site: Path, plugin: str, code: str, *, dist: str | None = None) -> str:
    """Write a distribution 'installed' in ``site`` whose ``modelyard.plugins`` entry point ``plugin`` runs ``code``.

    Returns:
        The name of the plugin's module (unique, so no test sees another's import).
    """
    module = f"fake_{plugin}_{uuid.uuid4().hex[:8]}"
    dist = dist or f"modelyard-{plugin}"
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[modelyard.plugins]\n{plugin} = {module}\n")
    return module


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on ``sys.path`` to 'install' fake distributions into."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


TOY = '''
    from modelyard import RegisterIntegration, hookimpl

    EVENTS = []

    @hookimpl
    def modelyard_register_integrations(register: RegisterIntegration) -> None:
        register("toy", "{callback}:Callback", framework="toyframework", package="modelyard-toy")

    @hookimpl
    def modelyard_after_upload(version):
        EVENTS.append(("after_upload", version))
'''


def write_toy(site: Path) -> tuple[str, str]:
    callback = f"fake_toy_callback_{uuid.uuid4().hex[:8]}"
    (site / f"{callback}.py").write_text("class Callback:\n    pass\n")
    return fake_distribution(site, "toy", TOY.format(callback=callback)), callback


def use(manager: PluginManager) -> PluginManager:
    set_plugin_manager(manager)
    return manager


# -- discovery ---------------------------------------------------------------------------------------


def test_an_installed_plugin_is_discovered_lazily(site: Path) -> None:
    module, callback = write_toy(site)
    manager = use(PluginManager())
    assert module not in sys.modules  # nothing is imported before plugins are first needed
    assert modelyard.available_integrations()["toy"] == "modelyard-toy 1.2.3"
    assert module in sys.modules and callback not in sys.modules  # the callback is a lazy string
    integration = manager.integrations()["toy"]
    assert (integration.plugin, integration.framework, integration.package) == \
        ("toy", "toyframework", "modelyard-toy")
    assert modelyard.get_callback_class("toy") is sys.modules[callback].Callback


def test_disabled_plugins_are_never_imported(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module, _ = write_toy(site)
    monkeypatch.setenv("MODELYARD_DISABLE_PLUGINS", "other, toy")
    manager = use(PluginManager())
    assert "toy" not in modelyard.available_integrations()
    assert module not in sys.modules
    assert manager.pluggy.is_blocked("toy")
    with pytest.raises(UnknownIntegrationError, match="MODELYARD_DISABLE_PLUGINS switches it off") as info:
        modelyard.get_callback_class("toy")
    assert "pip install modelyard-toy" in str(info.value) and "docs/api.md" in str(info.value)


def test_an_unknown_integration_lists_the_installed_ones_and_points_to_the_docs(site: Path) -> None:
    write_toy(site)
    use(PluginManager())
    with pytest.raises(UnknownIntegrationError) as info:
        modelyard.get_callback_class("toyy")
    message = str(info.value)
    assert "'toyy'" in message and "toy" in message.split("installed: ", 1)[1].split(")", 1)[0].split(", ")
    assert "Plugins section of docs/api.md" in message and "DISABLE" not in message


def test_a_broken_plugin_names_itself_and_the_switch(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_distribution(site, "broken", "raise ImportError('needs libfoo.so')\n")
    with pytest.raises(IntegrationImportError) as info:
        use(PluginManager()).integrations()
    message = str(info.value)
    assert "'broken'" in message and "needs libfoo.so" in message
    assert "MODELYARD_DISABLE_PLUGINS=broken" in message
    assert isinstance(info.value.__cause__, ImportError)
    monkeypatch.setenv("MODELYARD_DISABLE_PLUGINS", "broken")
    assert use(PluginManager()).integrations() == {}


def test_a_hook_with_an_unknown_name_is_refused_at_load(site: Path) -> None:
    # The names before the typed contract (modelyard_after_version_upload, ...) are not hooks any more.
    fake_distribution(site, "stale", '''
        from modelyard import hookimpl

        @hookimpl
        def modelyard_after_version_upload(model_id, version):
            pass
    ''')
    with pytest.raises(pluggy.PluginValidationError, match="modelyard_after_version_upload"):
        use(PluginManager()).integrations()


def test_a_bad_registration_names_the_plugin() -> None:
    class Plugin:
        @hookimpl
        def modelyard_register_integrations(self, register: Any) -> None:
            register("bad", "no-colon-here")

    manager = use(PluginManager(load_entry_points=False))
    manager.register(Plugin(), name="sloppy")
    with pytest.raises(ValueError, match="plugin 'sloppy' registered an integration as"):
        manager.integrations()


def test_managers_are_injectable_and_share_nothing() -> None:
    class Plugin:
        @hookimpl
        def modelyard_after_publish(self, model: Any) -> None:
            pass

    first = PluginManager(load_entry_points=False)
    second = PluginManager(pluggy.PluginManager("modelyard"), load_entry_points=False)
    first.register(Plugin(), name="only-in-first")
    assert first.pluggy.get_plugin("only-in-first") is not None
    assert second.pluggy.get_plugin("only-in-first") is None
    previous = set_plugin_manager(first)
    assert get_plugin_manager() is first
    set_plugin_manager(previous)
    reset_state()
    assert get_plugin_manager() not in (first, second, previous)
    # The facade is typed: one method per hook, no call-by-name.
    for method in ("before_upload", "after_upload", "on_upload_error", "before_publish", "after_publish"):
        assert callable(getattr(first, method))
    assert not hasattr(first, "call") and not hasattr(modelyard._plugins, "call")
    assert not hasattr(modelyard._plugins, "KNOWN_PACKAGES")


def test_import_and_discovery_import_no_framework(site: Path) -> None:
    module, _ = write_toy(site)
    code = (
        "import sys, modelyard, modelyard.hookspecs\n"
        "print(sorted(modelyard.available_integrations()))\n"
        f"print({module!r} in sys.modules)\n"
        f"print([m for m in {FRAMEWORKS!r} if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    env.pop("MODELYARD_DISABLE_PLUGINS", None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    names, discovered, frameworks = done.stdout.strip().splitlines()[-3:]
    assert "toy" in json.loads(names.replace("'", '"')) and discovered == "True"
    assert frameworks == "[]"


# -- lifecycle hooks ---------------------------------------------------------------------------------


class Recorder:
    """A plugin that records every lifecycle hook call, and vetoes when told to."""

    def __init__(self, veto: str | None = None) -> None:
        self.veto = veto
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _seen(self, hook: str, **kwargs: Any) -> None:
        self.calls.append((hook, kwargs))
        if hook == self.veto:
            raise PermissionError(f"{hook} refused by policy")

    @hookimpl
    def modelyard_before_upload(self, model: Any, file_name: str, iteration: int | None,
                                metadata: dict[str, Any]) -> None:
        self._seen("before_upload", model=model, file_name=file_name, iteration=iteration, metadata=metadata)

    @hookimpl
    def modelyard_after_upload(self, version: ModelVersion) -> None:
        self._seen("after_upload", version=version)

    @hookimpl
    def modelyard_on_upload_error(self, version: ModelVersion, error: UploadError) -> None:
        self._seen("on_upload_error", version=version, error=error)

    @hookimpl
    def modelyard_before_publish(self, model: Any) -> None:
        self._seen("before_publish", model=model)

    @hookimpl
    def modelyard_after_publish(self, model: Any) -> None:
        self._seen("after_publish", model=model)

    def hooks(self) -> list[str]:
        return [name for name, _ in self.calls]


def recording(veto: str | None = None) -> Recorder:
    recorder = Recorder(veto)
    use(PluginManager(load_entry_points=False)).register(recorder, name="recorder")
    return recorder


def test_after_hooks_receive_typed_objects(make_weights: Any) -> None:
    recorder = recording()
    out = OutputModel(Task.init(project_name="p", task_name="t"), name="m")
    returned = out.add_version(make_weights(), iteration=3, metadata={"loss": 0.25}, version_tags=["best"])
    OutputModel.wait_for_uploads()
    out.publish()
    assert recorder.hooks() == ["before_upload", "after_upload", "before_publish", "after_publish"]
    before = recorder.calls[0][1]
    assert before["model"] is out and before["file_name"] == "model.safetensors"
    assert before["iteration"] == 3 and before["metadata"] == {"loss": 0.25}
    version = recorder.calls[1][1]["version"]
    (stored,) = Model(out.id).versions
    assert isinstance(version, ModelVersion) and version == stored
    assert (version.model_id, version.version, version.iteration, version.state) == (out.id, 1, 3, "ready")
    assert version.uri == returned.uri and version.metadata == {"loss": 0.25} and version.tags == ["best"]
    assert version.size == stored.size and version.sha256 == stored.sha256 and len(version.sha256 or "") == 64
    assert recorder.calls[2][1]["model"] is out and recorder.calls[3][1]["model"] is out


def test_on_upload_error_receives_the_failed_version(make_weights: Any, faulty_fs: Any) -> None:
    FaultyFileSystem.set_plan("bucket", FaultPlan(error=PermissionError))
    recorder = recording()
    out = OutputModel(Task.init(project_name="p", task_name="t"), name="m")
    out.update_weights(make_weights(), iteration=1, upload_uri="faulty://bucket/m")
    with pytest.raises(UploadError) as raised:
        OutputModel.wait_for_uploads()
    assert recorder.hooks() == ["before_upload", "on_upload_error"]
    version, error = recorder.calls[1][1]["version"], recorder.calls[1][1]["error"]
    assert error is raised.value
    assert isinstance(version, ModelVersion)
    assert (version.model_id, version.version, version.iteration, version.state) == (out.id, 1, 1, "failed")
    assert version.error == error.cause == out.versions[0].error and "PermissionError" in version.error


def test_a_veto_in_before_upload_records_nothing(make_weights: Any) -> None:
    recorder = recording(veto="before_upload")
    out = OutputModel(Task.init(project_name="p", task_name="t"), name="m")
    src = make_weights()
    with pytest.raises(PermissionError, match="before_upload refused by policy"):
        out.update_weights(src, iteration=1, upload_uri=(src.parent / "elsewhere").as_uri())
    with pytest.raises(PermissionError):
        out.update_weights_package(weights_path=str(src.parent))
    OutputModel.wait_for_uploads()
    assert out.versions == [] and src.exists()
    assert get_registry().get_model(out.id).version_count == 0
    assert get_registry().get_model(out.id).upload_uri is None  # not even the destination is remembered
    root = Path(staging_root())
    assert not root.exists() or list(root.iterdir()) == []  # no staging folder left behind
    assert "after_upload" not in recorder.hooks()
    recorder.veto = None
    assert out.add_version(src).version == 1  # the veto consumed no version number


def test_a_veto_in_before_publish_keeps_the_model_unpublished(make_weights: Any) -> None:
    recorder = recording(veto="before_publish")
    out = OutputModel(Task.init(project_name="p", task_name="t"), name="m")
    out.update_weights(make_weights())
    with pytest.raises(PermissionError, match="before_publish refused"):
        out.publish()
    assert not out.published and not Model(out.id).published
    assert out.versions[0].state == "ready"  # publish waited for the upload before asking
    assert "after_publish" not in recorder.hooks()
    out.update_weights(make_weights())  # still mutable
    recorder.veto = None
    out.publish()
    assert out.published and recorder.hooks()[-1] == "after_publish"


def test_a_raising_notification_never_fails_the_upload(make_weights: Any, capfd: pytest.CaptureFixture[str]
                                                       ) -> None:
    recording(veto="after_upload")
    out = OutputModel(Task.init(project_name="p", task_name="t"), name="m")
    out.update_weights(make_weights())
    assert OutputModel.wait_for_uploads() is True
    assert out.versions[0].state == "ready"
    assert "after_upload refused by policy" in capfd.readouterr().err


def test_the_command_line_publish_runs_the_same_hooks(make_weights: Any) -> None:
    from click.testing import CliRunner

    from modelyard._cli import cli

    recorder = recording(veto="before_publish")
    out = OutputModel(Task.init(project_name="p", task_name="t"), name="m")
    out.update_weights(make_weights())
    OutputModel.wait_for_uploads()
    refused = CliRunner().invoke(cli, ["models", "publish", out.id], catch_exceptions=False)
    assert refused.exit_code != 0 and "before_publish refused by policy" in refused.stderr
    assert not Model(out.id).published
    recorder.veto = None
    done = CliRunner().invoke(cli, ["models", "publish", out.id], catch_exceptions=False)
    assert done.exit_code == 0, done.stderr
    assert Model(out.id).published
    assert recorder.hooks()[-2:] == ["before_publish", "after_publish"]
    model = recorder.calls[-1][1]["model"]
    assert isinstance(model, Model) and model.id == out.id and model.published


def test_a_resumed_upload_is_reported_with_its_journaled_version(make_weights: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import Future

    from modelyard import _uploads
    from modelyard._settings import hostname

    recorder = recording()
    out = OutputModel(Task.init(project_name="p", task_name="t"), name="m")
    with monkeypatch.context() as patch:  # a process that died right after recording the version
        patch.setattr(_uploads.UploadEngine, "submit", lambda self, job: Future())
        out.update_weights(make_weights(), iteration=9, metadata={"acc": 0.9})
    (row,) = get_registry().model_versions(out.id)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    get_registry().update_version(row.id, owner=f"{hostname()}|{dead}|1")
    assert modelyard.sync() == {"resumed": 1, "failed": 0, "pending": 0}
    assert recorder.hooks() == ["before_upload", "after_upload"]
    version = recorder.calls[-1][1]["version"]
    assert version == Model(out.id).versions[0]
    assert (version.state, version.iteration, version.metadata, version.model_id) == \
        ("ready", 9, {"acc": 0.9}, out.id)
