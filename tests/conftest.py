"""Shared test set-up: quiet, offline, CPU-only, every run under a temporary storage root, and
the suite spread over the machine's cores (pytest-xdist, ``-n auto`` in pyproject.toml,
with the scheduler below).

How the suite is spread: a test module is one unit of work, so a module's costly fixtures (a
wheel and a venv, a bootstrap of the Chinchilla table, an S3 server) are built once. Every module
with a test that starts a Ray cluster (marker ``cluster``) joins one unit, ``ray-cluster``, that
one worker runs test after test: two clusters at once would share the machine's cores with each other's
trainers and the tests' timing budgets would no longer hold. The other worker meanwhile runs the
CPU-bound modules (fits, coverage simulations, planning, the bad-input corpus)."""

import functools
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest


def pytest_xdist_make_scheduler(config, log):
    """Whole modules to a worker, and every module with a Ray-cluster test to one worker (the
    module docstring). xdist's own ``loadgroup`` would read ``xdist_group`` marks, but under
    pytest 9 the group it appends to a test's id is lost and the tests are spread one by one."""
    from xdist.scheduler import LoadScopeScheduling

    rootpath = config.rootpath

    class ModulesAndOneRayCluster(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "ray-cluster" if _starts_ray(rootpath / module) else module

    return ModulesAndOneRayCluster(config, log)


@functools.cache
def _starts_ray(path: Path) -> bool:
    """A test module with a test marked ``cluster`` (one that starts a Ray cluster)."""
    try:
        return "mark.cluster" in path.read_text()
    except OSError:
        return False


@pytest.fixture
def storage(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("TSWEEP_STORAGE", str(root))
    return root


def pytest_addoption(parser):
    parser.addoption(
        "--coverage-draws",
        type=int,
        default=0,
        help="draws per world of the full coverage measurement (tests/test_coverage.py); 0 skips it",
    )
