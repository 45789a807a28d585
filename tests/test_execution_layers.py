"""The rules and execution packages import downwards only: cli/web -> core -> execution ->
rules -> storage/models (imports for type checking aside)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "jobcontrol"
#: what each package must not import, at any depth of its code
ABOVE = {
    "rules": ("jobcontrol.execution", "jobcontrol.core", "jobcontrol.cli", "jobcontrol.web",
              "jobcontrol.storage"),
    "execution": ("jobcontrol.core", "jobcontrol.cli", "jobcontrol.web"),
}


def imported(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of each import in ``path``, outside ``if TYPE_CHECKING:``."""
    found: list[tuple[int, str]] = []
    todo: list[ast.AST] = [ast.parse(path.read_text(), str(path))]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        todo.extend(ast.iter_child_nodes(node))
    return found


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_a_layer_imports_nothing_above_it(package: str) -> None:
    wrong = [f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
             for path in sorted((PACKAGE / package).glob("*.py"))
             for line, module in imported(path)
             if any(module == up or module.startswith(f"{up}.") for up in ABOVE[package])]
    assert wrong == []
