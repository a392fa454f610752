"""Shared test set-up: quiet, offline, CPU-only, and every run under a temporary storage root."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest


@pytest.fixture
def storage(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("TSWEEP_STORAGE", str(root))
    return root
