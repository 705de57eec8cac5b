"""A typed facade over pluggy: lazy entry-point discovery, the integrations registry, one method per hook."""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from ._errors import IntegrationImportError, InvalidArgumentError, UnknownIntegrationError
from ._settings import ENV_DISABLE_PLUGINS, disabled_plugins

if TYPE_CHECKING:
    from ._errors import UploadError
    from ._model import Model
    from ._output_model import OutputModel
    from ._versions import ModelVersion

#: Where the integrations are listed, for "not installed" messages (core keeps no list of its own).
INTEGRATIONS_DOCS = "the Plugins section of docs/api.md in the modelyard documentation"


@dataclass(frozen=True)
class Integration:
    """A registered integration: its name, its lazy callback target and what it needs.

    Attributes:
        name: The integration name (``"lightning"``).
        callback: The ``"module:Class"`` string of its callback class.
        framework: The module its callback imports (for error messages).
        package: The distribution that provides it.
        plugin: The name of the plugin that registered it.
    """

    name: str
    callback: str
    framework: str | None = None
    package: str | None = None
    plugin: str | None = None


class PluginManager:
    """Owns one pluggy manager; discovers entry points on first use; one typed method per hook.

    Args:
        manager: A pluggy manager to use (tests inject a fresh one).
        load_entry_points: Discover plugins from the ``modelyard.plugins`` entry-point group.
    """

    def __init__(self, manager: pluggy.PluginManager | None = None, *, load_entry_points: bool = True) -> None:
        self._pm = manager or pluggy.PluginManager(hookspecs.PROJECT_NAME)
        for spec in (hookspecs.IntegrationSpec, hookspecs.UploadSpec, hookspecs.PublishSpec):
            self._pm.add_hookspecs(spec)
        self._load_entry_points = load_entry_points
        self._loaded = False
        self._lock = threading.RLock()
        self._integrations: dict[str, Integration] | None = None

    @property
    def pluggy(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, loaded."""
        self._ensure_loaded()
        return self._pm

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register a plugin object directly (tests, or applications without entry points).

        Raises:
            pluggy.PluginValidationError: The plugin implements a hook that does not exist, or with
                arguments the hook does not have.
        """
        with self._lock:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()
            self._integrations = None

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:
            if self._loaded:
                return
            for name in disabled_plugins():
                self._pm.set_blocked(name)
            if self._load_entry_points:
                self._load_plugins()
            # A hookimpl that names no known hook is a bug in that plugin: say so at load time.
            self._pm.check_pending()
            self._loaded = True

    def _load_plugins(self) -> None:
        # pluggy's load_setuptools_entrypoints would surface a broken plugin as a bare ImportError from
        # deep inside update_weights; name the plugin and the way to switch it off instead.
        seen: set[str] = set()
        for ep in importlib_metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            if ep.name in seen or self._pm.is_blocked(ep.name) or self._pm.get_plugin(ep.name) is not None:
                continue
            seen.add(ep.name)
            try:
                plugin = ep.load()
            except Exception as e:
                raise IntegrationImportError(
                    f"the modelyard plugin {ep.name!r} ({ep.value}) failed to import: {e}. Reinstall or "
                    f"uninstall it, or set {ENV_DISABLE_PLUGINS}={ep.name} to run without it.") from e
            self._pm.register(plugin, name=ep.name)

    # -- integrations ---------------------------------------------------------------------------------

    def integrations(self) -> dict[str, Integration]:
        """Return the registered integrations by name."""
        self._ensure_loaded()
        with self._lock:
            if self._integrations is None:
                found: dict[str, Integration] = {}
                for impl in self._pm.hook.modelyard_register_integrations.get_hookimpls():
                    impl.function(register=_Registrar(found, self._pm.get_name(impl.plugin)))
                self._integrations = found
            return dict(self._integrations)

    def callback_class(self, name: str) -> type:
        """Import and return an integration's callback class.

        Raises:
            UnknownIntegrationError: No enabled integration has that name (lists the installed ones).
            IntegrationImportError: The integration or its framework failed to import (chained).
        """
        integrations = self.integrations()
        if name not in integrations:
            installed = ", ".join(sorted(integrations)) or "none"
            disabled = (f" {ENV_DISABLE_PLUGINS} switches it off: remove {name!r} from it to use it."
                        if name in disabled_plugins() else "")
            # Core keeps no list of integration packages: the project's own follow one naming rule.
            raise UnknownIntegrationError(
                f"no modelyard integration named {name!r} is installed (installed: {installed}).{disabled} "
                f"Integrations are separate distributions; the modelyard project's own are named "
                f"modelyard-<framework> (`pip install modelyard-{name}`), see {INTEGRATIONS_DOCS}.")
        integration = integrations[name]
        module_name, _, attr = integration.callback.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            needs = f" It needs {integration.framework!r}." if integration.framework else ""
            raise IntegrationImportError(
                f"the {name!r} integration ({integration.callback}) failed to import: {e}.{needs} "
                f"Check that {integration.package or 'its package'} and its framework are installed.") from e
        try:
            obj = module
            for part in attr.split("."):
                obj = getattr(obj, part)
        except AttributeError as e:
            raise IntegrationImportError(f"the {name!r} integration names {integration.callback}, which "
                                         "does not exist") from e
        if not isinstance(obj, type):
            raise IntegrationImportError(f"{integration.callback} is not a class")
        return obj

    # -- lifecycle hooks: one typed method each (hookspecs.py documents them) ------------------------------

    @property
    def _hook(self) -> Any:
        self._ensure_loaded()
        return self._pm.hook

    def before_upload(self, model: OutputModel, file_name: str, iteration: int | None,
                      metadata: dict[str, Any]) -> None:
        """Call ``modelyard_before_upload``; an exception a plugin raises propagates (the veto)."""
        self._hook.modelyard_before_upload(model=model, file_name=file_name, iteration=iteration,
                                           metadata=metadata)

    def after_upload(self, version: ModelVersion) -> None:
        """Call ``modelyard_after_upload``."""
        self._hook.modelyard_after_upload(version=version)

    def on_upload_error(self, version: ModelVersion, error: UploadError) -> None:
        """Call ``modelyard_on_upload_error``."""
        self._hook.modelyard_on_upload_error(version=version, error=error)

    def before_publish(self, model: Model) -> None:
        """Call ``modelyard_before_publish``; an exception a plugin raises propagates (the veto)."""
        self._hook.modelyard_before_publish(model=model)

    def after_publish(self, model: Model) -> None:
        """Call ``modelyard_after_publish``."""
        self._hook.modelyard_after_publish(model=model)


class _Registrar:
    """The ``register`` callable handed to one plugin's ``modelyard_register_integrations``."""

    def __init__(self, found: dict[str, Integration], plugin: str | None) -> None:
        self._found = found
        self._plugin = plugin

    def __call__(self, name: str, callback: str, *, framework: str | None = None,
                 package: str | None = None) -> None:
        if not isinstance(name, str) or not name or not isinstance(callback, str) or ":" not in callback:
            raise InvalidArgumentError(
                f"plugin {self._plugin!r} registered an integration as ({name!r}, {callback!r}); expected a "
                "name and a 'module:Class' string")
        if name not in disabled_plugins():
            self._found[name] = Integration(name, callback, framework, package, self._plugin)


_manager_lock = threading.Lock()
_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """Return the process's plugin manager, created (not yet loaded) on first use."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = PluginManager()
        return _manager


def set_plugin_manager(manager: PluginManager | None) -> PluginManager | None:
    """Replace the process's plugin manager (tests inject a fresh one); return the previous one."""
    global _manager
    with _manager_lock:
        previous, _manager = _manager, manager
    return previous


def available_integrations() -> dict[str, str]:
    """Return the installed integrations: name to the distribution (and version) providing it."""
    out = {}
    for name, integration in sorted(get_plugin_manager().integrations().items()):
        version = ""
        if integration.package:
            try:
                version = importlib_metadata.version(integration.package)
            except importlib_metadata.PackageNotFoundError:
                version = ""
        out[name] = f"{integration.package or integration.plugin or '?'} {version}".strip()
    return out


def get_callback_class(name: str) -> type:
    """Return the callback class of an installed integration (imported now).

    Raises:
        UnknownIntegrationError: No installed integration has that name (lists the installed ones).
        IntegrationImportError: The integration or its framework failed to import (chained).
    """
    return get_plugin_manager().callback_class(name)
