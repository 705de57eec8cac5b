"""The public plugin contract of modelyard.

A plugin is a module (or object) with functions marked ``@hookimpl``, registered through the entry-point group
``modelyard.plugins``. Every hook is prefixed ``modelyard_``. Lifecycle hooks follow ``before_<op>`` (may veto
by raising), ``after_<op>`` (notifications, return ``None``) and ``on_<op>_error``.

Example ``pyproject.toml`` of a plugin::

    [project.entry-points."modelyard.plugins"]
    my_plugin = "my_package.plugin"
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from ._errors import UploadError
    from ._output_model import OutputModel
    from ._versions import ModelVersion

PROJECT_NAME = "modelyard"
ENTRY_POINT_GROUP = "modelyard.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: ``register(name, callback, *, framework=None, package=None)``: ``callback`` is a lazy
#: ``"module:Class"`` string, imported only when :func:`modelyard.get_callback_class` asks for it.
RegisterIntegration = Callable[..., None]

__all__ = ["ENTRY_POINT_GROUP", "PROJECT_NAME", "IntegrationSpec", "LifecycleSpec", "hookimpl", "hookspec"]


class IntegrationSpec:
    """Hooks that make framework integrations known to modelyard."""

    @hookspec
    def modelyard_register_integrations(self, register: RegisterIntegration) -> None:
        """Register the framework integrations this plugin provides.

        Called once, when integrations are first listed or looked up. Must import no framework: give the
        callback class as a ``"module:Class"`` string.

        Args:
            register: Call ``register(name, "package.module:Class", framework="torch",
                package="modelyard-lightning")`` once per integration. ``framework`` names the module whose
                import the callback needs (for error messages); ``package`` is the distribution to install.
        """


class LifecycleSpec:
    """Hooks the core fires for every framework alike, around the life of a model version."""

    @hookspec
    def modelyard_before_version_upload(self, model: OutputModel, file_name: str, iteration: int | None,
                                        metadata: dict[str, Any]) -> None:
        """Run in the caller's thread before a new version is recorded.

        Raise to veto the version: the exception propagates out of ``update_weights`` and nothing is
        recorded or uploaded.

        Args:
            model: The model receiving the version.
            file_name: The file (or package folder) name the version will have.
            iteration: The iteration passed to ``update_weights``.
            metadata: The version's metadata.
        """

    @hookspec
    def modelyard_after_version_upload(self, model_id: str, version: ModelVersion) -> None:
        """Notify that a version is durable and ``ready``. Runs in an upload worker thread.

        Args:
            model_id: The model's id.
            version: The ready version (uri, size, sha256, iteration, ...).
        """

    @hookspec
    def modelyard_on_upload_error(self, model_id: str, version: int, error: UploadError) -> None:
        """Notify that a version's upload failed. Runs in an upload worker thread.

        Args:
            model_id: The model's id.
            version: The version number that failed.
            error: The error that ``wait_for_uploads`` will raise.
        """

    @hookspec
    def modelyard_after_publish(self, model: OutputModel) -> None:
        """Notify that a model was published.

        Args:
            model: The model, now immutable.
        """
