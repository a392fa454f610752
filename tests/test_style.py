"""The tools that keep the house in order, run by the suite itself so that the README's test
command (and CI, which runs exactly that) fails on a lint error, an unformatted file or a type
error: ``ruff check``, ``ruff format --check`` and ``mypy`` (strict, the whole package), each
configured in pyproject.toml and pinned in the ``test`` extra so
every machine gives the same verdict."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 600


def _tool(name: str) -> list[str]:
    exe = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[test]' installs it")
    return [exe]


@pytest.mark.parametrize(
    "argv",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(argv):
    proc = subprocess.run(
        _tool(argv[0]) + argv[1:], cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
