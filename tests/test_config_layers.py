"""The config package's layers: no import circle, each module importing only those below it,
each module small; and the import walker (tests/imports.py) the checks rely on."""

from __future__ import annotations

import importlib
import textwrap
from pathlib import Path

import pytest

from tests.imports import cycles, import_graph, package_modules

PACKAGE = "jobcontrol.config"
#: the modules of the package, lowest first: each may import only those before it (the
#: package's ``__init__`` comes last; its docstring gives each module's job)
LAYERS = ("param_types", "settings", "model", "yaml_loader", "events", "values", "sections",
          "schedules", "commands", "params", "validation", "loading")
MAX_LINES = 600


def test_the_config_package_has_no_import_circle() -> None:
    assert cycles(import_graph(PACKAGE)) == []


def test_each_config_module_imports_only_the_layers_below_it() -> None:
    graph = import_graph(PACKAGE)
    order = [f"{PACKAGE}.{name}" for name in LAYERS] + [PACKAGE]
    assert sorted(graph) == sorted(order), "a new module needs its place in LAYERS"
    for position, module in enumerate(order):
        above = set(order[position:])
        assert not graph[module] & above, f"{module} imports {sorted(graph[module] & above)}"


@pytest.mark.parametrize("module", [*LAYERS, "__init__"])
def test_each_config_module_is_small(module: str) -> None:
    path = package_modules(PACKAGE)[PACKAGE if module == "__init__" else f"{PACKAGE}.{module}"]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.name} has {lines} lines"


def make_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def pkg_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return tmp_path


def test_the_walker_finds_a_circle_through_a_lazy_relative_import(pkg_root: Path) -> None:
    make_package(pkg_root, {
        "circ_pkg/__init__.py": "from circ_pkg.low import X\n",
        "circ_pkg/low.py": """\
            X = 1

            def later():
                from .high import Y  # lazy, relative: still an edge
                return Y
            """,
        "circ_pkg/high.py": "from circ_pkg import low\nY = low.X\n",
        "circ_pkg/alone.py": "import os\nimport circ_pkg.high\n",
    })
    graph = import_graph("circ_pkg")
    assert graph == {
        "circ_pkg": {"circ_pkg.low"},
        "circ_pkg.low": {"circ_pkg.high"},
        "circ_pkg.high": {"circ_pkg.low"},
        "circ_pkg.alone": {"circ_pkg.high"},
    }
    assert cycles(graph) == [["circ_pkg.high", "circ_pkg.low"]]


def test_the_walker_skips_type_checking_imports_and_sees_the_package_named(
    pkg_root: Path,
) -> None:
    make_package(pkg_root, {
        "tc_pkg/__init__.py": "from tc_pkg.a import A\n",
        "tc_pkg/a.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from tc_pkg.b import B
            else:
                import json
            A = 1
            """,
        "tc_pkg/b.py": "from tc_pkg.a import A\nB = A\n",
        "tc_pkg/sub/__init__.py": "from .. import A  # the package: its __init__ imports a\n",
    })
    graph = import_graph("tc_pkg")
    assert graph["tc_pkg.a"] == set()
    assert graph["tc_pkg.sub"] == {"tc_pkg"}
    assert cycles(graph) == []
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]
