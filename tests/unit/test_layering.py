"""The house rules, checked on the source: layers import downwards only, and no
module reaches into another's private parts.

Layers, lowest first (design.md): beam, render, store, agent | analysis,
widgets, then the facade (session, magics, cli). ``errors`` is shared by all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "microscope_jupyter"
LAYER = {"errors": 0, "package_data": 0, "gitmeta": 0, "beam": 1, "render": 2, "store": 3,
         "agent": 4, "analysis": 4, "testgen": 5, "widgets": 5, "demo_app": 5,
         "session_base": 6, "live_port": 6, "session": 6, "cluster": 6, "report": 6, "saved": 6,
         "assistant": 6, "investigation": 6, "overview": 6, "bisection": 7, "magics": 7, "magic_words": 7,
         "ipython_input": 7, "cli": 7, "__init__": 8}
# Same level, and still never one another: the agent writes into the store and
# analysis reads it; neither knows the other.
APART = {("agent", "analysis"), ("analysis", "agent")}
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "static" not in p.parts)


def room(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_rooms(path: Path) -> set[tuple[str, int]]:
    """(room, line) of every package-internal import in ``path``."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            up = node.level - 1
            base = list(path.relative_to(PACKAGE).parts[:depth - up]) if up <= depth else []
            target = base + (node.module.split(".") if node.module else [])
            if not target:   # `from .. import x`: the package itself
                target = ["__init__"] if not node.module else target
            found.add((target[0].removesuffix(".py"), node.lineno))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    here = room(path)
    for there, line in imported_rooms(path):
        if there == here or there not in LAYER:
            continue
        assert (here, there) not in APART, f"{path.name}:{line} imports {there}"
        assert LAYER[there] <= LAYER[here], f"{path.name}:{line}: {here} imports {there} (upward)"


def private_reads(path: Path) -> list[str]:
    """``x._name`` where ``_name`` is not defined in this module, and
    ``from .m import _name``: reaching into another module's private parts."""
    tree = ast.parse(path.read_text())
    own = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("self", "cls"):
            own.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            own.add(node.id)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                and not node.attr.startswith("__") and node.attr not in own \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            out.append(f"{path.name}:{node.lineno} reads .{node.attr}")
        if isinstance(node, ast.ImportFrom) and node.level:
            out += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")]
    return out


# Reads of a library's own documented-but-underscored API, not of ours.
# IPython's _showtraceback is where a shell shows a structured traceback (ipykernel
# overrides it to send the error message): the one way a custom handler's line
# becomes the cell's error output.
ALLOWED = {"_repr_mimebundle_", "_repr_html_", "_asdict", "_fields", "_replace", "_make",
           "_showtraceback"}


def test_no_module_reads_another_modules_private_parts():
    found = [r for path in MODULES for r in private_reads(path)
             if r.rsplit(".", 1)[-1] not in ALLOWED]
    assert found == []


def test_no_module_outgrows_a_room():
    """One job per module: past ~400 lines a module is doing several."""
    big = {str(p.relative_to(PACKAGE)): n for p in MODULES
           if (n := len(p.read_text().splitlines())) > 420 and p.name != "etf.py"}
    assert big == {}, big


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path, known: set[str]) -> set[str]:
    """Every package module ``path`` imports, at the top, inside a function or
    under TYPE_CHECKING alike: a circle through any of them is a knot."""
    here = module_name(path).split(".") if path.name == "__init__.py" \
        else module_name(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
            target = ".".join(base + (node.module.split(".") if node.module else []))
            # `from .pkg import mod` imports the module mod; `from .pkg import name`,
            # the package itself (its __init__)
            for alias in node.names:
                sub = f"{target}.{alias.name}".lstrip(".")
                found.add(sub if sub in known else target)
    found &= known
    return found - {module_name(path)}


def test_no_import_circles():
    graph = {module_name(p): set() for p in MODULES}
    for path in MODULES:
        graph[module_name(path)] = module_imports(path, set(graph))
    circles, state = [], {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for nxt in sorted(graph[module]):
            if state.get(nxt) == "open":
                circles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_circle_check_sees_a_circle(tmp_path):
    """The check above can fail: two modules that import each other are a circle."""
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from .a import y\n")
    known = {"a", "b"}
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path
    try:
        assert module_imports(tmp_path / "a.py", known) == {"b"}
        assert module_imports(tmp_path / "b.py", known) == {"a"}
    finally:
        PACKAGE = saved
