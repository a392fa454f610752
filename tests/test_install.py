"""An honest install: the wheel, built offline from the repository's tracked files and installed
into a fresh virtual environment, works on its own, from a folder outside the repository.

The environment takes its dependencies from this one (there is no index to install them from):
a ``.pth`` file in the new venv names this environment's own site-packages folders, whether this
is a venv or a system interpreter. (``--system-site-packages`` would not do: from inside a venv
it exposes the *base* interpreter's packages, not the venv's.) Plain folder lines in a ``.pth``
file are not processed as site folders, so this environment's editable install of a checkout is
not seen; PYTHONPATH is stripped too, and the test checks that the ``tsweep`` imported in the
environment is the wheel's copy. Then the shipped sweeps, DeepSpeed
configs and Grafana dashboard must be found as package data, and ``tsweep plan demo`` (a
shipped sweep by name) and ``tsweep grafana`` must work from the console script.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120


def _env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {
        **env,
        "HOME": str(home),
        "TSWEEP_STORAGE": str(home / "runs"),
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }


def _run(argv, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _dependency_dirs() -> list[str]:
    """This environment's own site-packages folders (and the user's, where this interpreter
    reads it): where tsweep's dependencies are installed, venv or not."""
    dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
    user = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user):
        dirs.append(user)
    return dirs


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> dict:
    """The wheel built from a copy of the tracked files (the build writes nothing into the
    repository), installed with --no-deps into a fresh venv; returns its paths and environment."""
    tmp = tmp_path_factory.mktemp("install")
    src, wheels, env_dir, outside = tmp / "src", tmp / "wheels", tmp / "venv", tmp / "elsewhere"
    outside.mkdir()
    env = _env(outside)
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((REPO / rel).read_bytes())
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", wheels, src], tmp, env)
    (wheel,) = wheels.glob("tsweep-*.whl")
    # No pip of its own: this environment's pip, run by the venv's python, installs into the venv.
    _run([sys.executable, "-m", "venv", "--without-pip", env_dir], tmp, env)
    python = env_dir / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp, env).stdout
    Path(purelib.strip(), "_tsweep_test_dependencies.pth").write_text("".join(f"{d}\n" for d in _dependency_dirs()))
    _run([python, "-m", "pip", "install", "--no-deps", "-q", wheel], tmp, env)
    return {
        "python": python,
        "tsweep": env_dir / "bin" / "tsweep",
        "dir": env_dir,
        "cwd": outside,
        "env": env,
        "wheel": wheel,
    }


PROBE = """
import json, sys
from importlib import resources
import tsweep
from tsweep.orchestrator import grafana
ds = resources.files("tsweep.workers").joinpath("deepspeed")
print(json.dumps({
    "file": tsweep.__file__, "prefix": sys.prefix,
    "deepspeed": sorted(p.name for p in ds.iterdir() if p.name.endswith(".json")),
    "zero3": json.loads(ds.joinpath("zero3.json").read_text())["zero_optimization"]["stage"],
    "grafana": grafana.dashboard_path(), "grafana_title": json.loads(grafana.dashboard_json())["title"],
    "sweeps": sorted(p.name for p in resources.files("tsweep.sweeps").iterdir() if p.name.endswith(".yaml")),
    "demo": tsweep.load_sweep("demo").name,  # the Python API resolves shipped names too
}))
"""


def test_the_venv_imports_the_wheels_copy_with_its_package_data(venv):
    got = json.loads(_run([venv["python"], "-c", PROBE], venv["cwd"], venv["env"]).stdout)
    here = os.path.realpath(venv["dir"])
    assert os.path.realpath(got["prefix"]) == here
    assert os.path.realpath(got["file"]).startswith(here + os.sep), f"tsweep came from {got['file']}, not the venv"
    assert got["deepspeed"] == ["zero0.json", "zero1.json", "zero2.json", "zero3.json"] and got["zero3"] == 3
    assert os.path.realpath(got["grafana"]).startswith(here + os.sep) and got["grafana_title"] == "tsweep"
    assert "demo.yaml" in got["sweeps"] and got["demo"] == "demo"


def test_the_console_script_plans_a_shipped_sweep_by_name_outside_the_repository(venv):
    proc = _run([venv["tsweep"], "plan", "demo", "--cpus", "64"], venv["cwd"], venv["env"])
    assert "finetune/d0.6@125k/pico/DF=1k" in proc.stdout and "total" in proc.stdout
    assert not (venv["cwd"] / "runs").exists(), "plan runs nothing and writes nothing"
    out = _run([venv["tsweep"], "grafana"], venv["cwd"], venv["env"]).stdout.strip()
    assert os.path.realpath(out).startswith(os.path.realpath(venv["dir"]) + os.sep)
    bad = subprocess.run(
        [str(venv["tsweep"]), "plan", "no-such-sweep"],
        cwd=venv["cwd"],
        env=venv["env"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr, bad.stderr
