"""The shape of the house: no import cycles in ``jobcontrol/``, layers that point down,
modules small enough to read.

The imports are read from the source by :mod:`tests.imports`: every one a module runs, at
the top and inside functions; those under ``if TYPE_CHECKING:`` never run and are left out
(a lower layer may name a higher one's type in an annotation).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.imports import cycles as import_cycles
from tests.imports import import_graph, package_modules

PACKAGE = Path(__file__).parent.parent / "jobcontrol"

#: the layers, top first: a module imports only from its own layer and the ones below it.
#: An entry is a module or a package (everything under it); the longest entry that names a
#: module places it. Every module is placed, and every entry names a module that exists.
LAYERS: list[tuple[str, list[str]]] = [
    ("entry points", ["jobcontrol", "jobcontrol.__main__", "jobcontrol.cli", "jobcontrol.web"]),
    ("presentation", ["jobcontrol.present"]),
    ("core", ["jobcontrol.core", "jobcontrol.pausing", "jobcontrol.history", "jobcontrol.runs"]),
    ("execution", ["jobcontrol.execution", "jobcontrol.scheduler", "jobcontrol.backfill",
                   "jobcontrol.reaper",
                   "jobcontrol.pruner", "jobcontrol.retention"]),
    ("rules and config", ["jobcontrol.rules", "jobcontrol.config", "jobcontrol.schedule",
                          "jobcontrol.notify"]),
    ("storage and models", ["jobcontrol.storage", "jobcontrol.models",
                            "jobcontrol.progress_report"]),
    ("foundation", ["jobcontrol.errors", "jobcontrol.text", "jobcontrol.timeutil",
                    "jobcontrol.serialize", "jobcontrol.secrets", "jobcontrol.context",
                    "jobcontrol.importing", "jobcontrol.version", "jobcontrol.fingerprints"]),
]

#: cycles that are there today, each with what removes it; the test fails when one is gone,
#: so this list only shrinks
KNOWN_CYCLES: dict[frozenset[str], str] = {}

#: imports that point up today, each with what removes it (this list only shrinks too)
KNOWN_UPWARD: dict[tuple[str, str], str] = {}

#: a module longer than this is asking to be split
MAX_LINES = 600
#: modules longer today, each with what shortens it (this list only shrinks)
KNOWN_LONG: dict[str, str] = {}


MODULES: dict[str, Path] = package_modules("jobcontrol")
GRAPH: dict[str, set[str]] = import_graph("jobcontrol")


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The import circles of ``graph`` (see :func:`tests.imports.cycles`), as sets."""
    return [frozenset(group) for group in import_cycles(graph)]


def _covers(entry: str, module: str) -> bool:
    """Whether a LAYERS entry names ``module`` (the facade ``jobcontrol``: only itself)."""
    return module == entry or (entry != "jobcontrol" and module.startswith(entry + "."))


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the longest entry naming ``module``."""
    matches = [(len(entry), number) for number, (_, entries) in enumerate(LAYERS)
               for entry in entries if _covers(entry, module)]
    assert matches, f"{module} is in no layer: add it to LAYERS"
    return max(matches)[1]


def test_the_import_reader_sees_every_kind_of_import() -> None:
    assert "jobcontrol.core" in GRAPH["jobcontrol.cli.helpers"]  # inside a function
    assert "jobcontrol.storage.base" in GRAPH["jobcontrol.storage"]  # relative or absolute
    assert "jobcontrol.rules.graph" in GRAPH["jobcontrol.present"]  # ``from ... import graph``
    assert "jobcontrol.core" not in GRAPH["jobcontrol.present"]  # type-only
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        frozenset({"a", "b", "c"})]


def test_no_import_cycles() -> None:
    found = cycles(GRAPH)
    new = [sorted(group) for group in found if group not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"
    gone = [sorted(group) for group in KNOWN_CYCLES if group not in found]
    assert not gone, f"no longer cycles, take them out of KNOWN_CYCLES: {gone}"


def test_every_module_is_in_a_layer_and_every_entry_names_a_module() -> None:
    for module in MODULES:
        layer_of(module)
    for _, entries in LAYERS:
        for entry in entries:
            assert entry in MODULES, f"LAYERS names {entry}, which is no module"


def test_layers_point_down() -> None:
    upward = {(module, target) for module, targets in GRAPH.items() for target in targets
              if layer_of(target) < layer_of(module)}
    new = sorted(upward - set(KNOWN_UPWARD))
    assert not new, "imports pointing up the layers: " + ", ".join(f"{a} -> {b}" for a, b in new)
    gone = sorted(set(KNOWN_UPWARD) - upward)
    assert not gone, f"no longer pointing up, take them out of KNOWN_UPWARD: {gone}"


def test_the_web_never_imports_the_cli() -> None:
    for module, targets in GRAPH.items():
        if module.startswith("jobcontrol.web"):
            assert not {t for t in targets if t.startswith("jobcontrol.cli")}, module


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_modules_are_short(path: Path) -> None:
    name = str(path.relative_to(PACKAGE.parent))
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if name in KNOWN_LONG:
        assert lines > MAX_LINES, f"{name} is {lines} lines now: take it out of KNOWN_LONG"
    else:
        assert lines <= MAX_LINES, f"{name} is {lines} lines (at most {MAX_LINES}): split it"
