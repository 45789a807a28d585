"""Code versions read without importing, input fingerprints and their size+mtime cache,
and when a dependency's new value is the one a job used."""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcontrol.fingerprints import (
    RACY_SECONDS,
    InputFile,
    code_version,
    fingerprint_inputs,
    function_source,
)
from jobcontrol.rules.outdated import same_value
from jobcontrol.serialize import StoredValue, encode_result


@pytest.fixture
def package(tmp_path: Path) -> Iterator[str]:
    """A package on sys.path whose __init__ would fail if it were ever imported."""
    name = f"pkg_{uuid.uuid4().hex[:10]}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text("raise RuntimeError('imported!')\n"
                                      "from .impl import work as exported\n")
    (root / "impl.py").write_text(
        "import functools\n\n\n"
        "@functools.lru_cache\n"
        "def work(x):\n"
        "    return x  # the first version\n\n\n"
        "class Job:\n"
        "    def run(self):\n"
        "        return 1\n\n\n"
        "work = functools.wraps(work)(work)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m.startswith(name)]:
            del sys.modules[module]


def test_source_is_read_without_importing_decorators_included(package: str) -> None:
    source = function_source(f"{package}.impl.work")
    assert source.startswith("@functools.lru_cache\ndef work(x):")
    assert source.endswith("# the first version\n")
    assert package not in sys.modules  # its __init__ never ran
    assert function_source(f"{package}.impl:Job.run") == "def run(self):\n    return 1\n"


def test_a_re_exported_function_is_followed_to_its_definition(package: str) -> None:
    assert function_source(f"{package}:exported") == function_source(f"{package}.impl.work")


def test_the_version_changes_with_the_source_and_code_version_overrides_it(
        package: str, tmp_path: Path) -> None:
    first = code_version(f"{package}.impl.work")
    assert first.source == "function" and first.problem is None
    assert first.value == hashlib.sha256(
        function_source(f"{package}.impl.work").encode()).hexdigest()
    impl = tmp_path / package / "impl.py"
    impl.write_text(impl.read_text().replace("the first version", "the second one!"))
    assert code_version(f"{package}.impl.work").value != first.value
    assert code_version(f"{package}.impl.work", "7").as_json() == {
        "version": "7", "from": "code_version", "problem": None}


@pytest.mark.parametrize(("function", "problem"), [
    ("nowhere_at_all_x.f", "module 'nowhere_at_all_x' not found on sys.path"),
    ("builtins.len", "module 'builtins' has no Python source"),
])
def test_a_source_that_cannot_be_read_gives_no_version_and_says_why(function: str,
                                                                   problem: str) -> None:
    found = code_version(function)
    assert found.value is None
    assert found.problem is not None and found.problem.startswith(problem)


def test_inputs_are_hashed_and_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "a.csv"
    path.write_text("1\n")
    old = path.stat().st_mtime_ns - int(RACY_SECONDS * 3e9)
    os.utime(path, ns=(old, old))
    (tmp_path / "data" / "sub").mkdir()  # a folder is no input
    found = fingerprint_inputs(["data/*", "missing.txt"], tmp_path)
    assert found == {"data/a.csv": InputFile(hashlib.sha256(b"1\n").hexdigest(), 2, old)}
    # the same size and mtime: the recorded fingerprint stands, the file is not read
    known = {"data/a.csv": InputFile("recorded", 2, old)}
    assert fingerprint_inputs(["data/*.csv"], tmp_path, known)["data/a.csv"].sha256 == "recorded"
    path.write_text("2\n")  # same size, a new mtime: read again
    assert fingerprint_inputs(["data/*.csv"], tmp_path, known)["data/a.csv"].sha256 == (
        hashlib.sha256(b"2\n").hexdigest())


def test_a_file_written_just_before_its_fingerprint_is_not_trusted_later(
        tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    [found] = fingerprint_inputs(["a.txt"], tmp_path).values()
    assert found.mtime_ns is None  # too recent: the next look reads it again
    known = {"a.txt": InputFile("stale", 1, None)}
    assert fingerprint_inputs(["a.txt"], tmp_path, known)["a.txt"].sha256 != "stale"


def test_recursive_globs_and_files_outside_the_folder(tmp_path: Path) -> None:
    base = tmp_path / "project"
    (base / "data" / "2026").mkdir(parents=True)
    (base / "data" / "2026" / "x.csv").write_text("x")
    (tmp_path / "shared.txt").write_text("s")
    found = fingerprint_inputs(["data/**/*.csv", "../shared.txt"], base)
    assert list(found) == [(tmp_path / "shared.txt").resolve().as_posix(), "data/2026/x.csv"]


def test_same_value_compares_stored_results() -> None:
    assert same_value(StoredValue("json", '{"a": 1, "b": 2}'),
                      StoredValue("json", '{"b": 2, "a": 1}'))
    assert same_value(encode_result({3, 1, 2}), encode_result({1, 2, 3}))
    assert not same_value(encode_result(1), encode_result(True))
    assert not same_value(encode_result([1]), encode_result([1, 2]))
    assert not same_value(StoredValue("repr", "<x>"), StoredValue("repr", "<x>"))
    assert same_value(encode_result(1, "pickle"), encode_result(1, "pickle"))
    assert not same_value(encode_result(1, "pickle"), encode_result(1))
    assert not same_value(None, encode_result(None))
    # a job that returns nothing says nothing of what it made: never the same value
    assert not same_value(encode_result(None), encode_result(None))
