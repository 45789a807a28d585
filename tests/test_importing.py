"""Tests of jobcontrol.importing: dotted paths to callables, and one-line failures."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobcontrol.config import Location
from jobcontrol.errors import JobControlError, JobImportError
from jobcontrol.importing import describe_callable, import_callable, parse_function_path

MODULE = '''\
"""A module of jobs for the tests."""

VALUE = 42


def fetch(days, *, region="eu"):
    """Fetch things.

    More text.
    """
    return days


class Reports:
    """Report builders."""

    @staticmethod
    def build(name: str, size: int = 3) -> str:
        return name

    @classmethod
    def make(cls):
        return cls
'''

Make = Callable[[str, str], None]


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Make]:
    """Write modules under tmp_path (importable); forget them after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)

    def make(relative: str, source: str) -> None:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        importlib.invalidate_caches()

    yield make
    for name in set(sys.modules) - before:
        if name.startswith("jct_"):
            del sys.modules[name]


def failure(dotted: str, **kwargs: object) -> str:
    with pytest.raises(JobImportError) as info:
        import_callable(dotted, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_three_forms(modules: Make) -> None:
    modules("jct_pipe.py", MODULE)
    modules("jct_pkg/__init__.py", "")
    modules("jct_pkg/sub.py", MODULE)
    fetch = import_callable("jct_pipe.fetch")
    assert fetch(3) == 3
    assert import_callable("jct_pipe:fetch") is fetch
    assert import_callable("jct_pipe:Reports.build")("x") == "x"
    reports = import_callable("jct_pipe:Reports")
    assert import_callable("jct_pipe:Reports.make")() is reports
    assert import_callable("jct_pkg.sub.fetch")(5) == 5
    assert import_callable("jct_pkg.sub:Reports.build")("y") == "y"


def test_sys_path_is_left_alone(modules: Make) -> None:
    modules("jct_path.py", MODULE)
    before = list(sys.path)
    import_callable("jct_path.fetch")
    with pytest.raises(JobImportError):
        import_callable("jct_nowhere.fetch")
    assert sys.path == before


def test_missing_module_full_message() -> None:
    message = failure(
        "jct_missing_pipeline.nope",
        job_id="x",
        location=Location("jobs.yaml", 3, 15),
    )
    assert message == (
        "jobs.yaml:3:15: job 'x': cannot import function 'jct_missing_pipeline.nope': "
        "No module named 'jct_missing_pipeline'"
    )


def test_message_without_job_or_location_and_other_key() -> None:
    message = failure("jct_missing.clean", key="cleanup_function")
    assert message.startswith("cannot import cleanup_function 'jct_missing.clean': ")
    assert issubclass(JobImportError, JobControlError)


def test_missing_submodule_of_existing_package(modules: Make) -> None:
    modules("jct_pkg2/__init__.py", "")
    assert "No module named 'jct_pkg2.nosub'" in failure("jct_pkg2.nosub:f")


def test_missing_attribute(modules: Make) -> None:
    modules("jct_attr.py", MODULE)
    message = failure("jct_attr.nope", job_id="a")
    assert message.endswith(
        "job 'a': cannot import function 'jct_attr.nope': module 'jct_attr' has no attribute 'nope'"
    )
    assert failure("jct_attr:Reports.nope").endswith("'jct_attr:Reports' has no attribute 'nope'")


def test_class_method_written_with_dots_gets_a_hint(modules: Make) -> None:
    modules("jct_hint.py", MODULE)
    message = failure("jct_hint.Reports.build")
    assert "No module named 'jct_hint.Reports'" in message
    assert "write 'jct_hint:Reports.build'" in message


def test_not_callable(modules: Make) -> None:
    modules("jct_value.py", MODULE)
    assert failure("jct_value.VALUE").endswith(
        "cannot import function 'jct_value.VALUE': not a callable (type int)"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1 / 0\n", "importing 'jct_raises' raised ZeroDivisionError: division by zero"),
        ("def broken(:\n", "importing 'jct_raises' raised SyntaxError: "),
        ("import jct_no_such_dependency\n", "raised ModuleNotFoundError: No module named"),
        ("raise RuntimeError('bad\\nconfig')\n", "raised RuntimeError: bad config"),
        ("import sys\nsys.exit(3)\n", "importing 'jct_raises' raised SystemExit: 3"),
    ],
    ids=["zero-division", "syntax", "missing-dependency", "multi-line", "sys-exit"],
)
def test_module_that_fails_to_import(modules: Make, source: str, expected: str) -> None:
    modules("jct_raises.py", source)
    message = failure("jct_raises.f", job_id="j", location=Location("jobs.yaml", 2))
    assert message.startswith("jobs.yaml:2: job 'j': cannot import function 'jct_raises.f': ")
    assert expected in message


@pytest.mark.parametrize(
    "dotted",
    [
        "nodots",
        "",
        "a.",
        ".a",
        "a:",
        ":a",
        "a..b",
        "1a.b",
        "a.b-c",
        "a:b:c",
        "a.class",
        "a b.c",
        "a.b:",
    ],
)
def test_malformed_paths(dotted: str) -> None:
    with pytest.raises(ValueError, match=r"expected 'package\.module\.function'"):
        parse_function_path(dotted)
    assert "expected 'package.module.function' or 'package.module:function'" in failure(dotted)


@pytest.mark.parametrize(
    ("dotted", "parsed"),
    [
        ("a.b", ("a", ("b",))),
        ("a.b.c", ("a.b", ("c",))),
        ("a.b:c", ("a.b", ("c",))),
        ("a:C.m", ("a", ("C", "m"))),
        ("pkg.mod:Class.inner.meth", ("pkg.mod", ("Class", "inner", "meth"))),
        ("_private.fn_2", ("_private", ("fn_2",))),
    ],
)
def test_well_formed_paths(dotted: str, parsed: tuple[str, tuple[str, ...]]) -> None:
    assert parse_function_path(dotted) == parsed


def test_describe_callable(modules: Make) -> None:
    modules("jct_describe.py", MODULE)
    assert describe_callable(import_callable("jct_describe.fetch")) == (
        "(days, *, region='eu')",
        "Fetch things.\n\nMore text.",
    )
    signature, doc = describe_callable(import_callable("jct_describe:Reports.build"))
    assert (signature, doc) == ("(name: str, size: int = 3) -> str", "")

    class Opaque:
        __signature__ = "not a signature"

        def __call__(self) -> None:
            """Call me."""

    assert describe_callable(Opaque())[0] == "(...)"
