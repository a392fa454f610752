"""The house's layering, read from the imports themselves: arrows only point down, no circles.

Layers, floor first (``tsweep/__init__.py`` says what each holds)::

    core  <  sweeps  <  data  <  workers, analysis  <  orchestrator  <  api  <  cli

A module may import from its own package and from lower layers; ``workers`` and ``analysis``
stand side by side and import neither each other. Imports inside functions count the same as
those at the top of a module (a lazy import that runs upward is still an upward arrow).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "tsweep"
RANK = {
    "core": 0,
    "sweeps": 1,
    "data": 2,
    "workers": 3,
    "analysis": 3,
    "orchestrator": 4,
    "api": 5,
    "cli": 6,
    "__main__": 7,
    "__init__": 6,
}
HEAVY = ("torch", "deepspeed", "ray", "transformers")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def _first_party(imports: set[str], modules: dict[str, Path]) -> set[str]:
    return {m for m in imports if m in modules}


def test_no_arrow_points_up():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        src = _layer(name)
        for target in _first_party(_imports(path), modules):
            dst = _layer(target)
            if dst == src or target == "tsweep":
                continue
            if RANK[dst] >= RANK[src]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that point up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_circles():
    modules = _modules()
    graph = {n: _first_party(_imports(p, top_level_only=True), modules) - {n} for n, p in modules.items()}
    # a package's __init__ re-exporting its own modules is not a circle: only module -> module edges count
    graph = {
        n: {t for t in ts if not (modules[t].name == "__init__.py" and n.startswith(t + "."))}
        for n, ts in graph.items()
    }
    state: dict[str, int] = defaultdict(int)
    cycles = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for t in graph[n]:
            if state[t] == 1:
                cycles.append(" -> ".join([*stack[stack.index(t) :], t]))
            elif state[t] == 0:
                visit(t, [*stack, t])
        state[n] = 2

    for n in graph:
        if state[n] == 0:
            visit(n, [n])
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_the_floor_imports_no_heavy_framework():
    for name, path in _modules().items():
        if _layer(name) in ("core", "sweeps"):
            heavy = {m for m in _imports(path) if m.split(".")[0] in HEAVY}
            assert not heavy, f"{name} imports {heavy}"


@pytest.mark.parametrize(
    "code",
    [
        "import tsweep",
        "import tsweep.cli; tsweep.cli.build_parser()",
        "from tsweep.orchestrator.plan import expand; import tsweep; expand(tsweep.load_sweep('demo'))",
    ],
)
def test_planning_and_the_api_never_import_torch_or_ray(code):
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
