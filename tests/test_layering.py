"""The data flows one way: model -> graph -> scores -> circuits -> views. Each package imports only lower rooms.

Read from the source (imports at run time, lazy ones inside functions included; `if TYPE_CHECKING:` blocks
are annotations only and do not count), so a new upward import fails here, naming the file.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "viscnn"

# Lower numbers are lower rooms; a room may import itself and any lower room, never a room at its level or above.
LEVELS = {
    "errors": 0, "paths": 0,
    "store": 1, "data": 1, "distributed": 1,
    "models": 2,
    "graph": 3,
    "scoring": 4,
    "circuits": 5, "featurevis": 5, "inspection": 5, "layout": 5, "train": 5,
    "pipeline": 6,
    "server": 7,
    "commands": 8, "microscope": 8,
    "cli": 9, "__main__": 10, "__init__": 10,
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, imported viscnn module) for every import outside `if TYPE_CHECKING:` blocks."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "viscnn":
                found.extend((node.lineno, f"viscnn.{alias.name}") for alias in node.names)
            elif node.module.startswith("viscnn."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names if alias.name.startswith("viscnn."))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")


def test_every_room_has_a_level():
    rooms = {room(path) for path in PACKAGE.rglob("*.py")}
    assert rooms <= set(LEVELS), f"rooms without a level in this test: {sorted(rooms - set(LEVELS))}"


def test_imports_flow_one_way():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = room(path)
        for line, module in runtime_imports(ast.parse(path.read_text(), str(path))):
            there = module.split(".")[1]
            if there == "__version__" or there == here:
                continue
            if LEVELS.get(there, 99) >= LEVELS[here]:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {module} ({there})")
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


@pytest.mark.parametrize("source, expected", [
    ("import viscnn.graph\n", ["viscnn.graph"]),
    ("from viscnn import errors\n", ["viscnn.errors"]),
    ("def f():\n    from viscnn.server import app\n", ["viscnn.server"]),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from viscnn.server import app\n", []),
    ("import typing\nif typing.TYPE_CHECKING:\n    import viscnn.server\nelse:\n    import viscnn.store\n",
     ["viscnn.store"]),
])
def test_the_import_reader(source, expected):
    assert [module for _, module in runtime_imports(ast.parse(source))] == expected
