"""A typed facade over pluggy: lazy entry-point discovery, integrations registry, hook calls."""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any

import pluggy

from . import hookspecs
from ._errors import IntegrationImportError, InvalidArgumentError, UnknownIntegrationError
from ._settings import disabled_plugins

#: Integrations shipped by the modelyard project, for "install this" hints.
KNOWN_PACKAGES = {"lightning": "modelyard-lightning", "pytorch_lightning": "modelyard-lightning[pytorch-lightning]",
                  "keras": "modelyard-keras", "transformers": "modelyard-transformers"}


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
    """Owns one pluggy manager; loads entry points on first use.

    Args:
        manager: A pluggy manager to use (tests inject a fresh one).
        load_entry_points: Discover plugins from the ``modelyard.plugins`` entry-point group.
    """

    def __init__(self, manager: pluggy.PluginManager | None = None, *, load_entry_points: bool = True) -> None:
        self._pm = manager or pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs.IntegrationSpec)
        self._pm.add_hookspecs(hookspecs.LifecycleSpec)
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
        """Register a plugin object directly (tests, or applications without entry points)."""
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
                    f"uninstall it, or set MODELYARD_DISABLE_PLUGINS={ep.name} to run without it.") from e
            self._pm.register(plugin, name=ep.name)

    def integrations(self) -> dict[str, Integration]:
        """Return the registered integrations by name."""
        self._ensure_loaded()
        with self._lock:
            if self._integrations is None:
                found: dict[str, Integration] = {}
                for impl in self._pm.hook.modelyard_register_integrations.get_hookimpls():
                    plugin_name = self._pm.get_name(impl.plugin)

                    def register(name: str, callback: str, *, framework: str | None = None,
                                 package: str | None = None, _plugin: str | None = plugin_name) -> None:
                        if not isinstance(name, str) or not name or not isinstance(callback, str) \
                                or ":" not in callback:
                            raise InvalidArgumentError(
                                f"plugin {_plugin!r} registered an integration as ({name!r}, {callback!r}); "
                                "expected a name and a 'module:Class' string")
                        if name in disabled_plugins():
                            return
                        found[name] = Integration(name, callback, framework, package, _plugin)

                    impl.function(register=register)
                self._integrations = found
            return dict(self._integrations)

    def callback_class(self, name: str) -> type:
        """Import and return an integration's callback class."""
        integrations = self.integrations()
        if name not in integrations:
            installed = ", ".join(sorted(integrations)) or "none"
            package = KNOWN_PACKAGES.get(name)
            hint = f" Install it with `pip install {package}`." if package else ""
            raise UnknownIntegrationError(
                f"no modelyard integration named {name!r} is installed (installed: {installed}).{hint}")
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

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        """Call a lifecycle hook on every plugin that implements it."""
        self._ensure_loaded()
        return list(getattr(self._pm.hook, hook_name)(**kwargs))


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


def call(hook_name: str, **kwargs: Any) -> list[Any]:
    """Call a lifecycle hook through the process's plugin manager."""
    return get_plugin_manager().call(hook_name, **kwargs)


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
