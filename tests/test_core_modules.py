"""Inside the floor, each module has one job and imports only the modules its job needs: the table
below is the contract (``tsweep/core/__init__.py`` says each one's job), read from the imports."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "tsweep" / "core"
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "units": set(),
    "paths": set(),
    "jsonio": set(),
    "sizes": set(),
    "cadence": set(),
    "dataspec": set(),
    "records": set(),
    "files": {"errors", "paths"},
    "layout": {"files", "paths"},
    "store": {"errors", "files", "paths"},
    "job": {"layout", "sizes", "units"},
}


def _core_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tsweep"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.split(".")[2] for n in names if n.startswith("tsweep.core.") and n.count(".") >= 2}
        assert all(n.startswith("tsweep.core") for n in names if n.startswith("tsweep")), f"{path.name}: {names}"
    return {m for m in found if (CORE / f"{m}.py").exists()}


def test_every_core_module_is_in_the_table() -> None:
    assert {p.stem for p in CORE.glob("*.py")} - {"__init__"} == set(MAY_IMPORT)


def test_core_modules_import_only_what_the_table_allows() -> None:
    wrong = {
        name: sorted(extra)
        for name in MAY_IMPORT
        if (extra := _core_imports(CORE / f"{name}.py") - MAY_IMPORT[name] - {name})
    }
    assert not wrong, f"imports outside the table: {wrong}"
