"""Shared test set-up: quiet, offline, CPU-only, every run under a temporary storage root, and
the suite spread over the machine's cores (pytest-xdist, ``-n auto --dist loadgroup`` in
pyproject.toml).

How the suite is spread: a test module is one unit of work, so a module's costly fixtures (a
wheel and a venv, a bootstrap of the Chinchilla table, an S3 server) are built once. Every test
that starts a Ray cluster (marker ``cluster``) joins one unit, ``ray-cluster``, that one worker
runs test after test: two clusters at once would share the machine's cores with each other's
trainers and the tests' timing budgets would no longer hold. The other worker meanwhile runs the
CPU-bound modules (fits, coverage simulations, planning, the bad-input corpus)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        group = "ray-cluster" if item.get_closest_marker("cluster") else item.module.__name__
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def storage(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("TSWEEP_STORAGE", str(root))
    return root
