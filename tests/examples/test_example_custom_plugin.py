"""examples/custom_plugin really installs with pip and is discovered through its entry point.

The plugin is installed into a fresh virtual environment (never into the one running the tests), which
sees this environment's packages; a script run there registers a model and publishes it, and the plugin's
audit log shows that its lifecycle hooks fired. The same script here, where the plugin is not installed,
finds no such plugin: discovery comes from the installed distribution's metadata, not from an import path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "custom_plugin"

SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import modelyard
    from modelyard import OutputModel, Task
    from modelyard._plugins import get_plugin_manager

    names = sorted(name for name, plugin in get_plugin_manager().pluggy.list_name_plugin() if plugin)
    task = Task.init(project_name="audit", task_name="run")
    out = OutputModel(task, name="audited")
    modelyard.save_safetensors({"w": np.ones((2, 2), np.float32)}, sys.argv[1])
    out.update_weights(sys.argv[1], iteration=7)
    out.publish()  # waits for the upload, then fires after_publish
    print("RESULT", json.dumps({"plugins": names, "model": out.id}))
''')


def _run(python: Path | str, workdir: Path, env: dict[str, str]) -> dict:
    workdir.mkdir(exist_ok=True)
    script = workdir / "audited.py"
    script.write_text(SCRIPT)
    env = {**env, "MODELYARD_HOME": str(workdir / "home")}
    done = subprocess.run([str(python), str(script), str(workdir / "w.safetensors")], env=env, cwd=workdir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.split(" ", 1)[1])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_the_installed_plugin_hooks_fire(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   timeout=300)
    python = venv / "bin" / "python"
    # --system-site-packages shows the base interpreter's packages; under tox the packages under test live
    # in tox's own virtual environment, so expose this environment's site folders (with their .pth files).
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in sorted(ours) if Path(p).is_dir())
    (Path(purelib) / "_parent_env.pth").write_text(lines)

    # A real build and install. The build backend (hatchling) comes from the package index, unless this
    # environment has it already (then no download: --no-build-isolation).
    offline = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *offline, str(PLUGIN)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]

    audit = tmp_path / "audit.log"
    env = {**os.environ, "MODELYARD_AUDIT_LOG": str(audit)}
    env.pop("MODELYARD_DISABLE_PLUGINS", None)
    result = _run(python, tmp_path / "installed", env)
    assert "audit_log" in result["plugins"]
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["event"] for e in events] == ["version_ready", "published"]
    ready = events[0]
    assert ready["model_id"] == result["model"] and ready["iteration"] == 7 and ready["version"] == 1
    assert len(ready["sha256"]) == 64 and ready["size"] > 0

    # Disabled by name: no hook fires.
    audit.unlink()
    result = _run(python, tmp_path / "disabled", {**env, "MODELYARD_DISABLE_PLUGINS": "audit_log"})
    assert "audit_log" not in result["plugins"] and not audit.exists()

    # Not installed here: the same script in this environment knows no such plugin.
    here = _run(sys.executable, tmp_path / "here", env)
    assert "audit_log" not in here["plugins"] and not audit.exists()
