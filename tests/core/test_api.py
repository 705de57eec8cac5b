"""The public facade: pinned exports, version, and no framework imported by `import modelyard`."""

from __future__ import annotations

from pathlib import Path

import tomllib

import modelyard

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_pinned_and_sorted() -> None:
    assert modelyard.__all__ == sorted(modelyard.__all__)
    assert modelyard.__all__ == [
        "ArchiveError", "BEST_TAG", "CheckpointRanking", "ConfigError", "DestinationError", "FINAL_TAG",
        "FormatError", "InputModel", "IntegrationImportError", "IntegrityError", "InvalidArgumentError",
        "LAST_TAG", "LabelError", "MissingDependencyError", "Model", "ModelVersion", "ModelyardError",
        "NotFoundError", "OutputModel", "PublishedModelError", "RegisterIntegration", "RegistryError",
        "StorageError", "Task", "TrainingRecorder", "UnknownIntegrationError", "UnsafeFormatError", "UploadError",
        "__version__", "available_integrations", "check_labels_fit", "discover_labels", "enable_graceful_shutdown",
        "get_callback_class", "hookimpl", "json_safe", "labels_from", "labels_from_id2label", "labels_from_names",
        "load_weights", "pick_version", "save_safetensors", "sniff_format", "sync", "validate_labels",
        "version_file",
    ]
    for name in modelyard.__all__:
        assert hasattr(modelyard, name), name


def test_every_distribution_shares_one_version() -> None:
    versions = {}
    for path in [ROOT / "core/pyproject.toml", *sorted(ROOT.glob("integrations/*/pyproject.toml"))]:
        project = tomllib.loads(path.read_text())["project"]
        versions[project["name"]] = project["version"]
        pins = [d for d in project.get("dependencies", []) if d.startswith("modelyard")]
        assert all(d.endswith(f"=={project['version']}") for d in pins), (path, pins)
    assert len(set(versions.values())) == 1, versions
    assert modelyard.__version__ == versions["modelyard"]


def test_errors_are_typed_and_argument_errors_are_value_errors() -> None:
    for name in ("ConfigError", "LabelError", "PublishedModelError", "NotFoundError", "DestinationError",
                 "ArchiveError", "FormatError", "UnsafeFormatError", "InvalidArgumentError"):
        cls = getattr(modelyard, name)
        assert issubclass(cls, modelyard.ModelyardError) and issubclass(cls, ValueError), name
    assert issubclass(modelyard.UploadError, modelyard.ModelyardError)


def test_import_modelyard_imports_no_ml_framework() -> None:
    from modelyard.testing import frameworks_imported_by

    code = "import modelyard, modelyard.hookspecs, modelyard.testing\nmodelyard.available_integrations()"
    assert frameworks_imported_by(code) == []
