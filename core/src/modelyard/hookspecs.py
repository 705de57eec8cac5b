"""The public plugin contract of modelyard.

A plugin is a module (or object) with functions marked ``@modelyard.hookimpl``, registered through the
entry-point group ``modelyard.plugins``. Every hook is prefixed ``modelyard_`` and grouped below by subject.
Lifecycle hooks follow one pattern: ``modelyard_before_<op>`` runs before anything is recorded and vetoes the
operation by raising; ``modelyard_after_<op>`` is a notification and returns ``None``;
``modelyard_on_<op>_error`` reports a failure. A notification hook that raises is reported on stderr and never
turns a durable version into a failure.

Example ``pyproject.toml`` of a plugin::

    [project.entry-points."modelyard.plugins"]
    my_plugin = "my_package.plugin"

and ``my_package/plugin.py`` (imported at discovery, in every process that uses modelyard: keep it light)::

    from modelyard import ModelVersion, hookimpl

    @hookimpl
    def modelyard_after_upload(version: ModelVersion) -> None:
        print(f"model {version.model_id} version {version.version} is ready at {version.uri}")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from ._errors import UploadError
    from ._model import Model
    from ._output_model import OutputModel
    from ._versions import ModelVersion

PROJECT_NAME = "modelyard"
ENTRY_POINT_GROUP = "modelyard.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class RegisterIntegration(Protocol):
    """The ``register`` callable that :meth:`IntegrationSpec.modelyard_register_integrations` receives."""

    def __call__(self, name: str, callback: str, *, framework: str | None = None,
                 package: str | None = None) -> None:
        """Register one integration.

        Args:
            name: The integration's name (``"lightning"``), as :func:`modelyard.get_callback_class` takes it.
            callback: The callback class as a lazy ``"module:Class"`` string, imported on first use.
            framework: The module the callback needs (named in import errors).
            package: The distribution that provides it (named in messages and ``modelyard info``).

        Raises:
            InvalidArgumentError: ``name`` is empty or ``callback`` is not a ``"module:Class"`` string.
        """


__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "IntegrationSpec",
    "PublishSpec",
    "RegisterIntegration",
    "UploadSpec",
    "hookimpl",
    "hookspec",
]


class IntegrationSpec:
    """Hooks that make framework integrations known to modelyard."""

    @hookspec
    def modelyard_register_integrations(self, register: RegisterIntegration) -> None:
        """Register the framework integrations this plugin provides.

        Called once per plugin manager, when integrations are first listed or looked up. Must import no
        framework: name the callback class as a ``"module:Class"`` string.

        Args:
            register: Call ``register(name, "package.module:Class", framework="torch",
                package="modelyard-lightning")`` once per integration (see :class:`RegisterIntegration`).
        """


class UploadSpec:
    """Hooks around one weights version: before it is recorded, once it is ready, when its upload failed."""

    @hookspec
    def modelyard_before_upload(self, model: OutputModel, file_name: str, iteration: int | None,
                                metadata: dict[str, Any]) -> None:
        """Run in the caller's thread before a new version is recorded; raise to veto it.

        The arguments are validated; no registry row, staging folder or snapshot exists yet. An exception
        raised here propagates out of ``update_weights`` (or ``add_version``) unchanged and nothing is
        recorded or uploaded.

        Args:
            model: The model receiving the version.
            file_name: The stored file (or package folder) name the version will have.
            iteration: The iteration passed to ``update_weights`` (``None`` if none).
            metadata: The version's metadata, as it will be stored. Do not modify it.
        """

    @hookspec
    def modelyard_after_upload(self, version: ModelVersion) -> None:
        """Notify that a version is durable and ``ready``. Runs in an upload worker thread.

        Args:
            version: The ready version: ``model_id``, ``version``, ``iteration``, ``uri``, ``size``, ``sha256``,
                ``metadata``, ``tags`` as recorded.
        """

    @hookspec
    def modelyard_on_upload_error(self, version: ModelVersion, error: UploadError) -> None:
        """Notify that a version's upload failed. Runs in an upload worker thread.

        Args:
            version: The version, in state ``failed`` with its ``error`` (the cause).
            error: The error that ``wait_for_uploads`` will raise for it.
        """


class PublishSpec:
    """Hooks around publishing, after which a model can no longer change."""

    @hookspec
    def modelyard_before_publish(self, model: Model) -> None:
        """Run before a model is published, once its pending uploads are settled; raise to veto.

        An exception raised here propagates out of ``publish()`` (or ``modelyard models publish``) and the
        model stays unpublished.

        Args:
            model: The model about to be published (an ``OutputModel`` from the API, a read-only ``Model``
                from the command line).
        """

    @hookspec
    def modelyard_after_publish(self, model: Model) -> None:
        """Notify that a model was published.

        Args:
            model: The model, now immutable (an ``OutputModel`` from the API, a read-only ``Model`` from the
                command line).
        """
