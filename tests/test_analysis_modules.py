"""The analysis package's module table, read from the imports themselves.

``tsweep/analysis/__init__.py`` gives each module one job and the analysis modules it may import;
this test holds the same table. An import outside it (at the top of a module or inside a
function) fails here, and so does a module the table does not know: a new module, or a new
arrow between two, is a decision made in both places.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tsweep" / "analysis"
ALLOWED = {
    "__init__": set(),
    "_blas": set(),
    "laws": set(),
    "tables": set(),
    "noise": set(),
    "fitter": {"_blas", "laws"},
    "records": {"fitter", "laws"},
    "transfer": {"fitter", "laws", "noise", "records"},
    "rendering": {"records"},
    "actor": {"records", "transfer"},
    "reporting": {"actor", "design", "records", "rendering", "transfer"},
    "advice": {"fitter", "laws", "records"},
    "plots": {"actor", "design", "fitter", "laws", "records", "rendering", "transfer"},
    "page": {"advice", "design", "records", "rendering"},
    "design": {"laws", "records", "transfer"},
    "worlds": {"records", "transfer"},
    "synthetic": {"laws"},
}
# Imports inside one function, allowed by name: (module, function) -> modules.
LAZY = {("records", "format_table"): {"rendering"}}


def _analysis_imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "tsweep.analysis":
                found |= {a.name for a in node.names}
            elif node.module.startswith("tsweep.analysis."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("tsweep.analysis.")}
    return found


def test_every_module_is_in_the_table_and_its_docstring():
    modules = {p.stem for p in PKG.glob("*.py")}
    assert modules == set(ALLOWED), f"not in the table: {modules - set(ALLOWED)}; gone: {set(ALLOWED) - modules}"
    doc = ast.get_docstring(ast.parse((PKG / "__init__.py").read_text())) or ""
    assert all(f"``{m}``" in doc for m in modules - {"__init__"}), "a module the package docstring does not describe"


def test_each_module_imports_only_what_the_table_allows():
    wrong = []
    for path in sorted(PKG.glob("*.py")):
        tree = ast.parse(path.read_text())
        lazy = {
            name
            for fn in ast.walk(tree)
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
            for name in _analysis_imports(fn) & LAZY.get((path.stem, fn.name), set())
        }
        extra = _analysis_imports(tree) - ALLOWED[path.stem] - lazy - {path.stem}
        wrong += [f"{path.stem} -> {m}" for m in sorted(extra)]
    assert not wrong, "imports outside tsweep/analysis/__init__.py's table:\n" + "\n".join(wrong)
