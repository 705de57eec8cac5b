"""Make the fixture of `test_migrations`: a registry exactly as modelyard 0.1 (schema version 2) writes it.

Run it with modelyard 0.1 itself, never with the code under test, e.g. from the repository root:

    git archive 432566b core/src | tar -x -C /tmp/release-0.1
    PYTHONPATH=/tmp/release-0.1/core/src python tests/core/data/make_registry_0_1.py tests/core/data/registry-0.1

It records models, versions (single files, a package, a registered URI, tagged and pinned ones), tasks, tags
and task links through 0.1's public API into an SQLite registry, then writes:

- ``schema-sqlite.sql``: the DDL as 0.1 created it (from ``sqlite_master``);
- ``schema-postgresql.sql``: the DDL 0.1's ``create_all`` sends to PostgreSQL (its tables rendered in that
  dialect, with the statistics it adds);
- ``rows.json``: every row of every table, booleans as booleans, the storage root replaced by ``@STORAGE@``;
- ``objects.json``: the object URIs (with ``@STORAGE@``) and how to rebuild each one's bytes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(out: Path) -> None:
    home = Path(tempfile.mkdtemp(prefix="modelyard-0.1-"))
    os.environ["MODELYARD_HOME"] = str(home)
    import sqlalchemy as sa

    import modelyard
    from modelyard import InputModel, Model, OutputModel, Task, _registry

    assert _registry.SCHEMA_VERSION == 2 and not hasattr(_registry, "_migrations"), "run this with modelyard 0.1"
    src = home / "src"
    src.mkdir()
    objects = {}

    def weights(name: str, value: float) -> str:
        path = src / f"{value}" / name
        path.parent.mkdir()
        modelyard.save_safetensors({"w": np.full((4,), value, np.float32)}, path)
        return str(path)

    train = Task.init(project_name="vision", task_name="resnet")
    resnet = OutputModel(train, name="resnet", tags=["baseline", "cnn"], comment="first run",
                         config_dict={"layers": 50, "lr": 0.1}, label_enumeration={"cat": 0, "dog": 1},
                         framework="PyTorch")
    for i in (1, 2, 3):
        resnet.update_weights(weights("model.safetensors", float(i)), iteration=i * 100,
                              metadata={"val_loss": 1.0 / i}, version_tags=["best"] if i == 2 else None)
        objects[i] = float(i)
    package = src / "tokenizer"
    package.mkdir()
    (package / "vocab.txt").write_text("a\nb\n")
    tokenizer = OutputModel(train, name="tokenizer", tags=["nlp"])
    tokenizer.update_weights_package(weights_path=str(package), auto_delete_file=False)
    OutputModel.wait_for_uploads()
    Model(resnet.id).pin_version(1)
    Model(resnet.id).set_version_tags(3, add=["last"])
    resnet.publish()
    train.close()

    tune = Task.init(project_name="vision", task_name="finetune")
    base = InputModel(name="resnet", project="vision")
    tune.connect(base)
    tuned = OutputModel(tune, name="resnet-tuned", tags=["cnn", "tuned"])
    tuned.update_weights(register_uri=f"file://{src}/registered.safetensors")
    old = OutputModel(tune, name="old", tags=["baseline"])
    Model(old.id).archive()
    OutputModel.wait_for_uploads()

    storage = f"file://{home}/storage"
    engine = sa.create_engine(_registry.registry_url())
    with engine.connect() as conn:
        ddl = [r[0] for r in conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")]
        rows = {}
        for table in _registry.metadata.sorted_tables:
            booleans = {c.name for c in table.columns if isinstance(c.type, sa.Boolean)}
            rows[table.name] = [
                {k: (bool(v) if k in booleans and v is not None else v) for k, v in r.items()}
                for r in conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()]
    engine.dispose()

    statements: list[str] = []
    mock = sa.create_mock_engine("postgresql+psycopg://", lambda sql, *a, **k: statements.append(
        str(sql.compile(dialect=mock.dialect)).strip()))
    _registry.metadata.create_all(mock, checkfirst=False)

    out.mkdir(parents=True, exist_ok=True)
    (out / "schema-sqlite.sql").write_text(";\n\n".join(ddl) + ";\n")
    (out / "schema-postgresql.sql").write_text(";\n\n".join(statements) + ";\n")
    text = json.dumps(rows, indent=1, ensure_ascii=False).replace(storage, "@STORAGE@")
    assert str(home) not in text.replace(str(src), "@SRC@"), "a path of the generating machine is left"
    (out / "rows.json").write_text(text.replace(str(src), "@SRC@") + "\n")
    (out / "objects.json").write_text(json.dumps(
        {v["uri"].replace(storage, "@STORAGE@"): objects[v["version"]]
         for v in rows["versions"] if v["model_id"] == resnet.id}, indent=1) + "\n")
    print(f"wrote {out} from {sqlite3.sqlite_version=} {home=}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
