"""Tests of jobcontrol.config: loading, defaults, !retval, Jinja, hashes and every mistake."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import pickle
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobcontrol.config import (
    RENDERED_NOTE,
    Config,
    JobDefinition,
    Location,
    RetentionPolicy,
    RetryPolicy,
    RetvalRef,
    RunnerSettings,
    find_config_path,
    load_config,
    parse_config,
)
from jobcontrol.config.yaml_loader import loader_class
from jobcontrol.errors import ConfigError, CycleError, UnknownJobError


@pytest.fixture(params=["libyaml", "pure-python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with libyaml's loader (when installed) and with PyYAML's own."""
    if request.param == "pure-python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    loader_class.cache_clear()
    yield request.param
    loader_class.cache_clear()  # monkeypatch restores yaml afterwards; pick again then


def write(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text))


def fails(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    error = info.value
    assert error.file == str(path)
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    assert error.message[0].islower() or error.message[0] in "'!"
    return error


FULL = """\
storage: sqlite:///builds.db
defaults:
  timeout: 1h
  concurrency: 2
  isolation: inline
  result: pickle
  tags: [nightly]
jobs:
  - id: fetch_prices
    title: Fetch prices
    function: pipeline.fetch_prices
    args: [EUR, 3]
    kwargs: {days: 7, since: 2024-01-02}
    tags: [finance, daily]
    timeout: 10m
    cleanup_function: pipeline:remove_prices
    concurrency: 3
    isolation: process
    result: json
  - id: report
    function: pipeline:make_report
    dependencies: [fetch_prices]
    args:
      - !retval fetch_prices
      - [1, !retval fetch_prices]
      - {nested: [!retval fetch_prices]}
    kwargs:
      prices: !retval fetch_prices
      options: {deep: {ref: !retval fetch_prices}, plain: [a, b]}
  - id: report.v2-x
    function: pipeline:Reports.build
    dependencies: [report, fetch_prices]
    timeout: null
    tags: []
"""


@pytest.mark.usefixtures("yaml_loader")
def test_full_config_round_trip(tmp_path: Path) -> None:
    config = load(tmp_path, FULL)
    assert config.path == (tmp_path / "jobs.yaml").resolve()
    assert config.directory == tmp_path.resolve()
    assert config.storage == "sqlite:///builds.db"
    assert config.rendered == FULL
    assert list(config.jobs) == ["fetch_prices", "report", "report.v2-x"]
    assert config.dependencies == {
        "fetch_prices": (),
        "report": ("fetch_prices",),
        "report.v2-x": ("report", "fetch_prices"),
    }

    fetch = config.job("fetch_prices")
    assert fetch == JobDefinition(
        id="fetch_prices",
        function="pipeline.fetch_prices",
        title="Fetch prices",
        args=("EUR", 3),
        kwargs={"days": 7, "since": date(2024, 1, 2)},
        tags=("finance", "daily"),
        timeout=600.0,
        cleanup_function="pipeline:remove_prices",
        concurrency=3,
        isolation="process",
        result="json",
    )
    assert fetch.location == Location(str(tmp_path / "jobs.yaml"), 9, 5)
    assert fetch.retval_jobs() == set()

    report = config.job("report")
    ref = RetvalRef("fetch_prices")
    assert report.title == "report"  # the id, when no title
    assert report.args == (ref, [1, ref], {"nested": [ref]})
    assert report.kwargs == {"prices": ref, "options": {"deep": {"ref": ref}, "plain": ["a", "b"]}}
    # defaults fill what the job leaves out
    assert (report.timeout, report.concurrency, report.isolation, report.result) == (
        3600.0,
        2,
        "inline",
        "pickle",
    )
    assert report.tags == ("nightly",)
    assert report.retval_jobs() == {"fetch_prices"}
    # plain containers, not the loader's marked ones
    assert type(report.kwargs) is dict
    assert type(report.kwargs["options"]) is dict
    assert type(report.args[1]) is list
    # a !retval knows where it was written
    assert report.args[0].location == Location(str(tmp_path / "jobs.yaml"), 24, 9)
    assert report.kwargs["prices"].location.line == 28

    last = config.job("report.v2-x")
    assert last.function == "pipeline:Reports.build"
    assert last.timeout is None  # an explicit null beats the default
    assert last.tags == ()  # the job's own list replaces the default


def test_location_of_points_at_values_and_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, FULL)
    file = str(tmp_path / "jobs.yaml")
    fetch, report = config.job("fetch_prices"), config.job("report")
    assert fetch.location_of("function") == Location(file, 11, 15)
    assert fetch.location_of("kwargs") == Location(file, 13, 13)
    assert report.location_of("timeout") == Location(file, 3, 12)  # from defaults
    assert report.location_of("cleanup_function") == report.location  # not given anywhere
    assert str(fetch.location_of("function")) == f"{file}:11:15"


def test_snapshot_is_json_and_complete(tmp_path: Path) -> None:
    report = load(tmp_path, FULL).job("report")
    snapshot = report.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert set(snapshot) == {f.name for f in dataclasses.fields(JobDefinition)} - {
        "location",
        "_marks",
        "secrets",
        "shell",  # a shell job's shows its command, env and cwd; a function's, command: null
    } | {"command"}
    assert snapshot["args"][0] == {"!retval": "fetch_prices"}
    assert snapshot["kwargs"]["options"]["deep"] == {"ref": {"!retval": "fetch_prices"}}
    assert snapshot["dependencies"] == ["fetch_prices"]
    fetch = load(tmp_path, FULL).job("fetch_prices")
    assert fetch.snapshot()["kwargs"] == {"days": 7, "since": "2024-01-02"}


def test_definitions_are_frozen_comparable_and_picklable(tmp_path: Path) -> None:
    config = load(tmp_path, FULL)
    report = config.job("report")
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.title = "x"  # type: ignore[misc]
    # location is not part of equality: the same job further down the file is equal
    moved = load(tmp_path, "# a comment\n\n" + FULL).job("report")
    assert moved.location != report.location
    assert moved == report
    assert pickle.loads(pickle.dumps(report)) == report


def simple(kwargs: str = "{days: 7}", extra: str = "") -> str:
    return f"jobs:\n  - id: a\n    function: m.f\n    kwargs: {kwargs}\n{extra}"


def test_definition_hash_is_pinned_and_stable(tmp_path: Path) -> None:
    job = load(tmp_path, simple()).job("a")
    expected = hashlib.sha256(b'{"args":[],"function":"m.f","kwargs":{"days":7}}').hexdigest()
    assert job.definition_hash == expected
    assert load(tmp_path, simple()).job("a").definition_hash == expected
    # key order does not matter; title, tags, timeout and the rest do not count
    unchanged = simple(
        "{days: 7}",
        "    title: Other\n    tags: [x]\n    timeout: 5m\n    concurrency: 4\n",
    )
    assert load(tmp_path, unchanged).job("a").definition_hash == expected


@pytest.mark.parametrize(
    "kwargs",
    ["{days: 8}", "{days: '7'}", "{days: 7, more: 1}", "{days: !retval b}", "{}"],
)
def test_definition_hash_changes_with_kwargs(tmp_path: Path, kwargs: str) -> None:
    base = load(tmp_path, simple(extra="    dependencies: [b]\n  - {id: b, function: m.g}\n"))
    other = load(tmp_path, simple(kwargs, "    dependencies: [b]\n  - {id: b, function: m.g}\n"))
    assert base.job("a").definition_hash != other.job("a").definition_hash


def test_definition_hash_covers_function_args_and_odd_scalars(tmp_path: Path) -> None:
    base = load(tmp_path, simple()).job("a")
    assert dataclasses.replace(base, function="m.g").definition_hash != base.definition_hash
    assert dataclasses.replace(base, args=(1,)).definition_hash != base.definition_hash
    odd = "jobs:\n  - id: a\n    function: m.f\n    args: [{when: %s, s: %s, 1: int}, 2024-01-02]\n"
    first = load(tmp_path, odd % ("2024-01-02 10:00:00", "!!set {x, y}")).job("a")
    again = load(tmp_path, odd % ("2024-01-02 10:00:00", "!!set {y, x}")).job("a")
    assert first.definition_hash == again.definition_hash
    later = load(tmp_path, odd % ("2024-01-02 11:00:00", "!!set {y, x}")).job("a")
    assert later.definition_hash != first.definition_hash


def test_defaults_merge_and_empty_jobs(tmp_path: Path) -> None:
    assert load(tmp_path, "jobs: []\n").jobs == {}
    assert load(tmp_path, "jobs:\n").jobs == {}  # a template that generated no jobs
    config = load(
        tmp_path,
        """\
        defaults: {timeout: 90, tags: [t]}
        jobs:
          - {id: a, function: m.f, tags: [own], timeout: 30s}
          - {id: b, function: m.f}
        """,
    )
    assert (config.job("a").tags, config.job("a").timeout) == (("own",), 30.0)
    assert (config.job("b").tags, config.job("b").timeout) == (("t",), 90.0)
    assert config.job("b").concurrency == 1
    assert config.storage is None


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        jobs:
          - &base {id: a, function: m.f, kwargs: {x: 1}}
          - <<: *base
            id: b
        """,
    )
    assert config.job("b").kwargs == {"x": 1}
    assert config.job("b").function == "m.f"


def test_unknown_job_lookup(tmp_path: Path) -> None:
    config = load(tmp_path, FULL)
    with pytest.raises(UnknownJobError, match="Did you mean 'report'"):
        config.job("reprot")


# --------------------------------------------------------------------------- Jinja


def test_jinja_loop_generates_jobs_from_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGIONS", "eu,us")
    text = """\
        jobs:
        {% for region in env.REGIONS.split(",") %}
          - id: fetch_{{ region }}
            function: pipeline.fetch
            kwargs: {region: {{ region }}}
        {% endfor %}
          - id: merge
            function: pipeline.merge
            dependencies: [{% for r in env.REGIONS.split(",") %}fetch_{{ r }}, {% endfor %}]
        """
    config = load(tmp_path, text)
    assert list(config.jobs) == ["fetch_eu", "fetch_us", "merge"]
    assert config.job("fetch_us").kwargs == {"region": "us"}
    assert config.job("merge").dependencies == ("fetch_eu", "fetch_us")
    assert "fetch_us" in config.rendered and "{%" not in config.rendered
    assert config.rendered.endswith("]\n")  # keep_trailing_newline


def test_jinja_macros_from_a_file_beside_the_config(tmp_path: Path) -> None:
    write(
        tmp_path,
        "{% macro job(name) %}  - {id: {{ name }}, function: m.{{ name }}}\n{% endmacro %}",
        "macros.j2",
    )
    config = load(tmp_path, '{% import "macros.j2" as m %}\njobs:\n{{ m.job("a") }}')
    assert config.job("a").function == "m.a"


def test_no_template_syntax_skips_jinja(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # any import of jinja2 would now fail
    assert list(load(tmp_path, FULL).jobs) == ["fetch_prices", "report", "report.v2-x"]


def test_jinja_undefined_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    error = fails(tmp_path, "jobs:\n\n  - id: {{ env.NOPE_NOT_SET }}\n    function: m.f\n")
    assert (error.line, error.column) == (3, None)
    assert "template error" in error.message and "NOPE_NOT_SET" in error.message
    error = fails(tmp_path, "jobs:\n  - id: a\n    function: m.f\n    title: {{ missing }}\n")
    assert error.line == 4
    assert "'missing' is undefined" in error.message


def test_jinja_syntax_and_runtime_errors(tmp_path: Path) -> None:
    error = fails(tmp_path, "jobs:\n\n  - id: {{ x }\n")
    assert (error.line, error.column) == (3, None)
    assert error.message == "template syntax error: unexpected '}'"
    error = fails(tmp_path, "jobs:\n{% for x in y %}\n  - id: a\n")
    assert "the innermost block that needs to be closed is 'for'" in error.message.lower()
    error = fails(tmp_path, "jobs: []\n\n# {{ 1 // 0 }}\n")
    assert error.line == 3
    assert "ZeroDivisionError" in error.message
    error = fails(tmp_path, '{% include "nothere.j2" %}\njobs: []\n')
    assert "template not found" in error.message


def test_errors_after_rendering_mention_the_rendered_text(tmp_path: Path) -> None:
    error = fails(
        tmp_path,
        """\
        {# a comment line #}
        jobs:
          - id: a
            function: m.f
            dependecies: []
        """,
    )
    assert error.message.endswith(RENDERED_NOTE)
    assert str(error).endswith(RENDERED_NOTE)
    assert error.line == 5
    # and not without a template
    error = fails(tmp_path, "jobs:\n  - id: a\n    function: m.f\n    dependecies: []\n")
    assert RENDERED_NOTE not in str(error)


def test_cycle_error_after_rendering_keeps_its_type(tmp_path: Path) -> None:
    error = fails(
        tmp_path,
        """\
        jobs:
          - {id: a, function: m.f, dependencies: [{{ "b" }}]}
          - {id: b, function: m.f, dependencies: [a]}
        """,
    )
    assert isinstance(error, CycleError)
    assert error.message.endswith(RENDERED_NOTE)


# --------------------------------------------------------------------------- mistakes

JOB = "jobs:\n  - id: a\n    function: m.f\n"  # lines 1-3; mistakes go on line 4


MISTAKES = [
    # (config text, line, column, part of the message)
    pytest.param(
        "jobs:\n  - id: a\n    function: m.f\n  - id: b\n    function: m.g\n    dependecies: [a]\n",
        6,
        5,
        "job 'b': unknown key 'dependecies' (did you mean 'dependencies'?)",
        id="unknown-job-key",
    ),
    pytest.param(JOB + "    deps: []\n", 4, 5, "(did you mean 'dependencies'?)", id="alias"),
    pytest.param(JOB + "    schedul: x\n", 4, 5, "unknown key 'schedul'", id="unknown-no-hint"),
    pytest.param("job: []\n", 1, 1, "unknown top-level key 'job' (did you mean 'jobs'?)", id="top"),
    pytest.param("timeout: 1h\njobs: []\n", 1, 1, "(put it under 'defaults:' or in a job)"),
    pytest.param(
        "function: m.f\njobs: []\n",
        1,
        1,
        "job keys go in an entry of the 'jobs' list",
        id="top-job",
    ),
    pytest.param(
        "defaults:\n  timout: 1h\njobs: []\n",
        2,
        3,
        "defaults: unknown key 'timout' (did you mean 'timeout'?)",
        id="defaults-key",
    ),
    pytest.param(
        "defaults: {function: m.f}\njobs: []\n",
        1,
        12,
        "defaults: 'function' cannot have a default",
        id="defaults-job-key",
    ),
    pytest.param("defaults: [a]\njobs: []\n", 1, 11, "defaults must be a mapping, got list"),
    pytest.param("storage: 5\njobs: []\n", 1, 10, "storage must be a URL", id="storage-type"),
    pytest.param("", None, None, "the config file is empty", id="empty"),
    pytest.param("# nothing\n\n", None, None, "the config file is empty", id="comments-only"),
    pytest.param("- a\n- b\n", 1, 1, "must be a mapping with a 'jobs' list, got list"),
    pytest.param("storage: x\n", 1, 1, "missing required key 'jobs'", id="no-jobs"),
    pytest.param("jobs: {a: 1}\n", 1, 7, "'jobs' must be a list of jobs, got mapping"),
    pytest.param("jobs:\n  - a\n", 2, 5, "job #1 must be a mapping", id="job-not-mapping"),
    pytest.param(JOB + "  - function: m.f\n", 4, 5, "job #2: missing required key 'id'"),
    pytest.param(
        "jobs:\n  - id: a\n    title: x\n", 2, 5, "job 'a': missing required key 'function'"
    ),
    pytest.param("jobs:\n  - id: a\n    function:\n", 3, 14, "job 'a': function must not be empty"),
    pytest.param("jobs:\n  - {id: 12, function: m.f}\n", 2, 10, "id must be a string, got integer"),
    pytest.param("jobs:\n  - {id: -a, function: m.f}\n", 2, 10, "job #1: invalid id '-a'"),
    pytest.param("jobs:\n  - {id: a b, function: m.f}\n", 2, 10, "invalid id 'a b'"),
    pytest.param(
        "jobs:\n  - id: a\n    function: nodots\n",
        3,
        15,
        "job 'a': function must look like 'package.module.function'",
        id="function-syntax",
    ),
    pytest.param("jobs:\n  - id: a\n    function: m.1f\n", 3, 15, "got 'm.1f'", id="function-1"),
    pytest.param("jobs:\n  - id: a\n    function: [m.f]\n", 3, 15, "function must be a string"),
    pytest.param(JOB + "    cleanup_function: 'm:'\n", 4, 23, "cleanup_function must look like"),
    pytest.param(JOB + "    title: 5\n", 4, 12, "job 'a': title must be a string, got integer"),
    pytest.param(JOB + "    args: {a: 1}\n", 4, 11, "job 'a': args must be a list, got mapping"),
    pytest.param(JOB + "    kwargs: [1]\n", 4, 13, "job 'a': kwargs must be a mapping, got list"),
    pytest.param(JOB + "    kwargs: {x: 1, 2: y}\n", 4, 20, "kwargs keys must be strings"),
    pytest.param(JOB + "    dependencies: b\n", 4, 19, "must be a list, got string (write [b])"),
    pytest.param(JOB + "    dependencies: 'b\n\n c'\n", 4, 19, "string (write it as a list)"),
    pytest.param(
        JOB + "    dependencies: [x, 3]\n", 4, 23, "each of dependencies must be a job id"
    ),
    pytest.param(JOB + "    tags: {x: 1}\n", 4, 11, "tags must be a list of tags, got mapping"),
    pytest.param(
        JOB + "    timeout: 10 minutes\n",
        4,
        14,
        "job 'a': bad timeout: expected a duration such as 30s",
        id="bad-duration",
    ),
    pytest.param(JOB + "    timeout: 0\n", 4, 14, "timeout must be more than 0", id="timeout-0"),
    pytest.param(JOB + "    timeout: true\n", 4, 14, "bad timeout", id="timeout-bool"),
    pytest.param("defaults:\n  timeout: soon\njobs: []\n", 2, 12, "defaults: bad timeout"),
    pytest.param(JOB + "    concurrency: 0\n", 4, 18, "concurrency must be at least 1, got 0"),
    pytest.param(JOB + "    concurrency: true\n", 4, 18, "must be a whole number", id="conc-bool"),
    pytest.param(JOB + "    concurrency: '2'\n", 4, 18, "got string", id="conc-str"),
    pytest.param(
        JOB + "    isolation: proces\n",
        4,
        16,
        "isolation must be 'process', 'inline' or 'pool', got 'proces' (did you mean 'process'?)",
        id="isolation",
    ),
    pytest.param(JOB + "    result: yaml\n", 4, 13, "result must be 'json' or 'pickle'"),
    pytest.param(
        "defaults: {result: 3}\njobs: []\n", 1, 20, "defaults: result must be", id="def-result"
    ),
    pytest.param(
        "jobs:\n  - {id: a, function: m.f}\n  - {id: b, function: m.f}\n"
        "  - {id: a, function: m.g}\n",
        4,
        10,
        "duplicate job id 'a' (first defined at line 2)",
        id="duplicate-id",
    ),
    pytest.param(
        "jobs:\n  - {id: fetch_prices, function: m.f}\n"
        "  - {id: b, function: m.f, dependencies: [fetch_price]}\n",
        3,
        43,
        "job 'b': unknown dependency 'fetch_price' (did you mean 'fetch_prices'?)",
        id="unknown-dependency",
    ),
    pytest.param(
        "jobs:\n  - {id: a, function: m.f, dependencies: [a]}\n",
        2,
        43,
        "job 'a': depends on itself",
        id="self-dependency",
    ),
    pytest.param(
        "jobs:\n  - {id: b, function: m.f}\n"
        "  - id: c\n    function: m.f\n    kwargs: {x: [1, !retval b]}\n",
        5,
        21,
        "job 'c': !retval b, but 'b' is not among its dependencies (add it to dependencies)",
        id="retval-not-dependency",
    ),
    pytest.param(
        "jobs:\n  - {id: fetch, function: m.f}\n"
        "  - {id: c, function: m.f, dependencies: [fetch], args: [!retval fech]}\n",
        3,
        58,
        "!retval fech, but 'fech' is not among its dependencies (did you mean 'fetch'?)",
        id="retval-typo",
    ),
    pytest.param(
        "jobs:\n  - {id: b, function: m.f}\n  - {id: c, function: m.f, title: !retval b}\n",
        3,
        35,
        "job 'c': !retval is only allowed inside a job's args and kwargs, not in 'title'",
        id="retval-in-title",
    ),
    pytest.param(JOB + "    tags: [x, !retval a]\n", 4, 15, "not in 'tags'", id="retval-in-tags"),
    pytest.param("defaults: {tags: [!retval a]}\njobs: []\n", 1, 19, "not in 'defaults'"),
    pytest.param(JOB + "    args: [!retval [b]]\n", 4, 12, "!retval takes the id of a dependency"),
    pytest.param(JOB + "    args: [!retval '']\n", 4, 12, "got an empty value", id="retval-empty"),
    pytest.param(JOB + "    args: &x [*x]\n", 4, 11, "args must not contain itself"),
    pytest.param(
        "jobs: []\njobs: []\n", 2, 1, "duplicate key 'jobs' (first at line 1)", id="dup-top"
    ),
    pytest.param(
        JOB + "    title: x\n    title: y\n", 5, 5, "duplicate key 'title' (first at line 4)"
    ),
    pytest.param(
        JOB + "    kwargs:\n      x: 1\n      y: 2\n      x: 3\n",
        7,
        7,
        "duplicate key 'x' (first at line 5)",
        id="dup-kwargs",
    ),
    pytest.param(
        JOB + "    args: [!!python/name:os.system '']\n",
        4,
        12,
        "tag !!python/name:os.system is not allowed: only plain YAML, !retval and !env",
        id="python-name",
    ),
    pytest.param(JOB + "    args: [!custom x]\n", 4, 12, "tag !custom is not allowed", id="tag"),
    pytest.param("jobs: [\n", 2, 1, "invalid YAML", id="unclosed"),
    pytest.param("jobs:\n  - id: a: b\n", 2, 10, "invalid YAML: mapping values are not allowed"),
    pytest.param("jobs:\n\t- id: a\n", 2, 1, "indented with tabs", id="tab"),
    pytest.param("jobs: []\nx: \x07\n", 2, 4, "character U+0007 is not", id="control-char"),
    pytest.param(
        "jobs: []\n---\njobs: []\n",
        2,
        1,
        "invalid YAML: expected a single document in the stream, but found another document",
        id="two-documents",
    ),
    pytest.param("jobs:\n  - {[a]: 1}\n", 2, 6, "a mapping key must be a plain value"),
    # values PyYAML's own constructors fail on without a mark
    pytest.param("jobs: []\nx: 2024-13-45\n", 2, 4, "invalid date '2024-13-45' (month must be"),
    pytest.param(JOB + "    args: [!!int abc]\n", 4, 12, "invalid integer 'abc'", id="bad-int"),
    pytest.param(JOB + "    args: [0x_]\n", 4, 12, "invalid integer '0x_'", id="bad-hex"),
    pytest.param(JOB + "    args: [!!float '']\n", 4, 12, "invalid number ''", id="bad-float"),
    pytest.param(JOB + "    args: [!!bool x]\n", 4, 12, "invalid boolean 'x'", id="bad-bool"),
    pytest.param(JOB + "    args: [!!timestamp x]\n", 4, 12, "invalid date 'x'", id="bad-date"),
    pytest.param("jobs: !!map x\n", 1, 7, "tag !!map needs a mapping, got a scalar"),
    pytest.param("jobs: !!seq {a: 1}\n", 1, 7, "tag !!seq needs a sequence, got a mapping"),
    pytest.param(JOB + "    args: " + "[" * 300 + "]" * 300 + "\n", 4, 208, "nested more than 200"),
    pytest.param(JOB + "    timeout: 1" + "0" * 400 + "\n", 4, 14, "bad timeout: the number is"),
    pytest.param(JOB + "    timeout: .inf\n", 4, 14, "bad timeout: expected a finite duration"),
    pytest.param(JOB + "    timeout: .nan\n", 4, 14, "expected a finite duration", id="nan"),
    # retries
    pytest.param(
        JOB + "    retries: {count: 3, dealy: 1s}\n",
        4,
        25,
        "job 'a': retries: unknown key 'dealy' (did you mean 'delay'?)",
        id="retries-key",
    ),
    pytest.param(
        JOB + "    retries: {delay: 1s}\n", 4, 14, "job 'a': retries: missing required key 'count'"
    ),
    pytest.param(JOB + "    retries: {count: -1}\n", 4, 22, "retries: count must be at least 0"),
    pytest.param(
        JOB + "    retries: {count: '3'}\n", 4, 22, "count must be a whole number of at least 0"
    ),
    pytest.param(JOB + "    retries: {count: true}\n", 4, 22, "got boolean", id="count-bool"),
    pytest.param(
        JOB + "    retries: {count: 3, delay: soon}\n", 4, 32, "retries: bad delay: expected"
    ),
    pytest.param(
        JOB + "    retries: {count: 3, backoff: 0.5}\n",
        4,
        34,
        "retries: backoff must be a number of at least 1, got 0.5",
    ),
    pytest.param(JOB + "    retries: {count: 3, backoff: x}\n", 4, 34, "at least 1, got string"),
    pytest.param(JOB + "    retries: {count: 3, backoff: .inf}\n", 4, 34, "got inf"),
    pytest.param(
        JOB + "    retries: {count: 3, max_delay: -5}\n",
        4,
        36,
        "retries: bad max_delay: a duration cannot be negative",
    ),
    pytest.param(JOB + "    retries: [3]\n", 4, 14, "retries must be a mapping such as {count"),
    pytest.param(JOB + "    retries: -2\n", 4, 14, "retries must be at least 0, got -2"),
    pytest.param(JOB + "    retries: {retries: 3}\n", 4, 15, "(did you mean 'count'?)"),
    pytest.param(
        "defaults:\n  retries: {count: x}\njobs: []\n",
        2,
        20,
        "defaults: retries: count must be a whole number",
    ),
    # retention
    pytest.param(
        JOB + "    retention: {keep_last: 0}\n", 4, 28, "retention: keep_last must be at least 1"
    ),
    pytest.param(
        JOB + "    retention: {keep_for: 0}\n",
        4,
        27,
        "retention: keep_for must be more than 0 (use null for builds of any age)",
    ),
    pytest.param(JOB + "    retention: {keep_for: 1y}\n", 4, 27, "retention: bad keep_for"),
    pytest.param(
        JOB + "    retention: {logs: {DEBG: 1d}}\n",
        4,
        24,
        "retention: logs: unknown log level 'DEBG' (did you mean 'DEBUG'?)",
    ),
    pytest.param(
        JOB + "    retention: {logs: {Trace: 1d}}\n",
        4,
        24,
        "(levels: DEBUG, INFO, WARNING, ERROR, CRITICAL)",
    ),
    pytest.param(
        JOB + "    retention: {logs: {debug: 1d, DEBUG: 2d}}\n",
        4,
        35,
        "retention: logs: level DEBUG is given twice",
    ),
    pytest.param(
        JOB + "    retention: {logs: {10: 1d}}\n", 4, 24, "a log level is a name such as DEBUG"
    ),
    pytest.param(JOB + "    retention: {logs: [DEBUG]}\n", 4, 23, "logs must be a mapping of"),
    pytest.param(JOB + "    retention: {logs: {INFO: forever}}\n", 4, 30, "logs: bad INFO:"),
    pytest.param(JOB + "    retention: {keep: 5}\n", 4, 17, "(did you mean 'keep_last'?)"),
    pytest.param(JOB + "    retention: 5\n", 4, 16, "retention must be a mapping such as"),
    pytest.param(
        "defaults:\n  retention: {keep_lst: 3}\njobs: []\n",
        2,
        15,
        "defaults: retention: unknown key 'keep_lst' (did you mean 'keep_last'?)",
    ),
    # runner
    pytest.param(
        "runner: {hearbeat: 5s}\njobs: []\n",
        1,
        10,
        "runner: unknown key 'hearbeat' (did you mean 'heartbeat'?)",
    ),
    pytest.param(
        "runner: {heartbeat: 90s}\njobs: []\n",
        1,
        21,
        "runner: heartbeat_timeout (1m, the default) must be more than heartbeat (1m30s)",
    ),
    pytest.param(
        "runner:\n  heartbeat: 10s\n  heartbeat_timeout: 10s\njobs: []\n",
        3,
        22,
        "runner: heartbeat_timeout (10s) must be more than heartbeat (10s)",
    ),
    pytest.param("runner: {heartbeat: 0}\njobs: []\n", 1, 21, "heartbeat must be more than 0"),
    pytest.param("runner: {kill_grace: -1}\njobs: []\n", 1, 22, "runner: bad kill_grace"),
    pytest.param("runner: {heartbeat: null}\njobs: []\n", 1, 21, "bad heartbeat"),
    pytest.param("runner: [1]\njobs: []\n", 1, 9, "runner must be a mapping such as"),
    pytest.param(
        "runner:\n  heartbeat: 5s\n  fork_server: true\njobs: []\n",
        3,
        3,
        "runner: key 'fork_server' was removed with the fork server: delete it",
        id="fork_server-removed",
    ),
    pytest.param("runner: {heartbeat: !retval a}\njobs: []\n", 1, 21, "not in 'runner'"),
    # secrets and !env
    pytest.param("secrets: hunter2\njobs: []\n", 1, 10, "secrets must be a list of strings"),
    pytest.param(
        "secrets: [ok, 1234]\njobs: []\n", 1, 15, "each of secrets must be a string, got integer"
    ),
    pytest.param(
        JOB + "    kwargs: {password: !env [A]}\n",
        4,
        24,
        "!env takes the name of an environment variable (e.g. `!env DB_PASSWORD`), got a sequence",
    ),
    pytest.param(JOB + "    kwargs: {password: !env 'A=B'}\n", 4, 24, "got 'A=B'", id="env-eq"),
    pytest.param(JOB + "    kwargs:\n      pw: !env\n", 5, 11, "got an empty value", id="env-"),
    # misplaced keys point where they belong
    pytest.param(
        "retries: {count: 1}\njobs: []\n",
        1,
        1,
        "unknown top-level key 'retries' (put it under 'defaults:' or in a job)",
    ),
    pytest.param(
        "retention: {}\njobs: []\n", 1, 1, "(put it under 'defaults:' or in a job)", id="top-ret"
    ),
    pytest.param("heartbeat: 5s\njobs: []\n", 1, 1, "'heartbeat' (put it under 'runner:')"),
    pytest.param(
        JOB + "    runner: {}\n", 4, 5, "job 'a': unknown key 'runner' (it is a top-level key)"
    ),
    pytest.param(JOB + "    count: 3\n", 4, 5, "unknown key 'count' (put it under 'retries:')"),
    pytest.param(JOB + "    heartbeat: 3\n", 4, 5, "(put it under the top-level 'runner:')"),
    pytest.param("defaults: {keep_last: 3}\njobs: []\n", 1, 12, "(put it under 'retention:')"),
    pytest.param(
        "defaults: {secrets: []}\njobs: []\n", 1, 12, "key 'secrets' (it is a top-level key)"
    ),
    pytest.param("secret: []\njobs: []\n", 1, 1, "(did you mean 'secrets'?)"),
    # executor and queue
    pytest.param("executor: celery\njobs: []\n", 1, 11, "executor must be a mapping such as"),
    pytest.param("executor: {typ: celery}\njobs: []\n", 1, 12, "(did you mean 'type'?)"),
    pytest.param("executor: {broker: redis://h}\njobs: []\n", 1, 11, "needs a type"),
    pytest.param("executor: {type: remote}\njobs: []\n", 1, 18, "'local' or 'celery'"),
    pytest.param("executor: {type: celery}\njobs: []\n", 1, 11, "needs a broker, e.g."),
    pytest.param(
        "executor:\n  type: celery\n  broker: http://h\njobs: []\n", 3, 11,
        "broker must be a redis:// or amqp:// URL, got one starting 'http'",
    ),
    pytest.param("executor: {type: celery, broker: 5}\njobs: []\n", 1, 34, "got integer"),
    pytest.param(
        "executor: {type: local, queue: q}\njobs: []\n", 1, 32, "queue is only for type: celery"
    ),
    pytest.param(
        "executor: {type: celery, broker: 'redis://h', queue: 'a b'}\njobs: []\n", 1, 54,
        "executor: bad queue 'a b'",
    ),
    pytest.param(JOB + "    queue: [gpu]\n", 4, 12, "job 'a': queue must be a queue name"),
    pytest.param("broker: redis://h\njobs: []\n", 1, 1, "(put it under 'executor:')"),
    pytest.param("queue: gpu\njobs: []\n", 1, 1, "(job keys go in an entry of the 'jobs' list)"),
]


@pytest.mark.usefixtures("yaml_loader")
@pytest.mark.parametrize(("text", "line", "column", "part"), MISTAKES)
def test_mistakes_are_located(
    tmp_path: Path, text: str, line: int | None, column: int | None, part: str
) -> None:
    error = fails(tmp_path, text)
    assert part in error.message
    assert (error.line, error.column) == (line, column), str(error)


def test_many_flow_mappings_load_without_the_depth_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """300 one-line ``{...}`` (more brackets than the depth limit) are plainly shallow: the
    cheap bound says so, and the file is not parsed a second time."""
    from jobcontrol.config import yaml_loader

    made: list[int] = []

    def counting_loader_class() -> Any:
        made.append(1)
        return loader_class()

    monkeypatch.setattr(yaml_loader, "loader_class", counting_loader_class)
    text = "defaults: {isolation: inline}\njobs:\n" + "".join(
        f"  - {{id: j{n}, function: m.f, kwargs: {{n: [{n}, {{x: []}}]}}}}\n"
        for n in range(300))
    assert yaml_loader._flow_depth_bound(text, 200) == 5  # exact here
    assert len(load(tmp_path, text).jobs) == 300
    assert len(made) == 1  # the loader; no second parse for the depth


@pytest.mark.parametrize("text", [
    JOB + "    args: " + "[" * 1000 + "]" * 1000 + "\n",
    # brackets in strings and comments cannot hide a deep nesting
    JOB + "    args: ['" + "]" * 300 + "', " + "[" * 250 + "]" * 250 + "]\n",
    JOB + "    args: [\"]]]]\", " + "[{a: " * 120 + "1" + "}]" * 120 + "]\n",
    JOB + "    args: [x, # ]]]]]]\n" + "      [" * 250 + "]" * 250 + "]\n",
])
def test_deep_nesting_is_refused_whatever_hides_brackets(tmp_path: Path, text: str) -> None:
    error = fails(tmp_path, text)
    assert "nested more than 200" in error.message or "invalid YAML" in error.message


def test_unknown_key_full_message(tmp_path: Path) -> None:
    text = "jobs:\n  - id: a\n    function: m.f\n  - id: b\n    function: m.g\n"
    text += "    dependecies: [a]\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:6:5: job 'b': unknown key 'dependecies' (did you mean 'dependencies'?)"
    )


def test_cycle_is_spelled_out_at_the_first_jobs_dependencies(tmp_path: Path) -> None:
    error = fails(
        tmp_path,
        """\
        jobs:
          - {id: root, function: m.f}
          - id: a
            function: m.f
            dependencies: [root, b]
          - {id: b, function: m.f, dependencies: [c]}
          - {id: c, function: m.f, dependencies: [a]}
        """,
    )
    assert isinstance(error, CycleError)
    assert error.cycle == ("a", "b", "c", "a")
    assert error.message == "dependency cycle: a -> b -> c -> a"
    assert (error.line, error.column) == (5, 5)


def test_python_tags_never_execute(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    for tag in ("!!python/object/apply:os.system", "!!python/object/new:os.system"):
        error = fails(tmp_path, f"{JOB}    args: [{tag} ['touch {target}']]\n")
        assert f"tag {tag} is not allowed: only plain YAML, !retval and !env" in error.message
        assert (error.line, error.column) == (4, 12)
    error = fails(tmp_path, f"!!python/object/apply:os.system ['touch {target}']\n")
    assert error.line == 1
    assert not target.exists()


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(tmp_path / "missing.yaml")
    assert info.value.file == str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"jobs: []\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_parse_config_from_text(tmp_path: Path) -> None:
    config = parse_config("jobs: [{id: a, function: m.f}]\n", "sub/jobs.yaml")
    assert config.path.is_absolute()
    assert config.path == Path("sub/jobs.yaml").resolve()
    assert config.job("a").location.file == "sub/jobs.yaml"
    with pytest.raises(ConfigError, match=r"^sub/jobs\.yaml:1:31: job 'a': unknown key 'x'"):
        parse_config("jobs: [{id: a, function: m.f, x: 1}]\n", "sub/jobs.yaml")


def test_location_str() -> None:
    assert str(Location("f.yaml")) == "f.yaml"
    assert str(Location("f.yaml", 3)) == "f.yaml:3"
    assert str(Location("f.yaml", 3, 7)) == "f.yaml:3:7"
    assert str(Location("f.yaml", None, 7)) == "f.yaml"


# --------------------------------------------------------------------------- discovery


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.delenv("JOBCONTROL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


def test_find_config_path_precedence(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        find_config_path()
    assert "no config file: pass -c FILE, set JOBCONTROL_CONFIG, or create ./jobcontrol.yaml" in (
        str(info.value)
    )
    (tmp_path / "jobcontrol.yaml").write_text("jobs: []\n")
    assert find_config_path() == Path("jobcontrol.yaml")
    (tmp_path / "from_env.yaml").write_text("jobs: []\n")
    clean_env.setenv("JOBCONTROL_CONFIG", "from_env.yaml")
    assert find_config_path() == Path("from_env.yaml")
    (tmp_path / "explicit.yaml").write_text("jobs: []\n")
    assert find_config_path("explicit.yaml") == Path("explicit.yaml")


def test_find_config_path_missing_files(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    (tmp_path / "jobcontrol.yaml").write_text("jobs: []\n")
    with pytest.raises(ConfigError, match=r"^nope\.yaml: config file does not exist"):
        find_config_path("nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        find_config_path(str(tmp_path))
    clean_env.setenv("JOBCONTROL_CONFIG", "gone.yaml")
    with pytest.raises(ConfigError, match=r"^gone.yaml: .*\$JOBCONTROL_CONFIG.*does not exist"):
        find_config_path()
    clean_env.setenv("JOBCONTROL_CONFIG", "")  # empty: as if unset
    assert find_config_path() == Path("jobcontrol.yaml")


# --------------------------------------------------------------------------- retries, retention


POLICIES = """\
defaults:
  retries: {count: 2, delay: 10s}
  retention: {keep_last: 50, keep_for: 30d, logs: {debug: 1d, Info: 7d}}
jobs:
  - {id: inherits, function: m.f}
  - id: own
    function: m.f
    retries: {count: 5, backoff: 2, max_delay: 1m}
    retention: {keep_last: 3}
  - {id: none, function: m.f, retries: null, retention: null}
  - {id: zero, function: m.f, retries: {count: 0, delay: 5s}}
  - {id: short, function: m.f, retries: 4}
"""


@pytest.mark.usefixtures("yaml_loader")
def test_retries_and_retention_with_defaults(tmp_path: Path) -> None:
    config = load(tmp_path, POLICIES)
    inherits, own = config.job("inherits"), config.job("own")
    assert inherits.retries == RetryPolicy(count=2, delay=10.0)
    assert inherits.retention == RetentionPolicy(
        keep_last=50, keep_for=30 * 86400.0, logs={logging.DEBUG: 86400.0, logging.INFO: 604800.0}
    )
    assert inherits.location_of("retries").line == 2  # from defaults
    # the job's own replaces the default wholesale: no delay, no keep_for, no logs inherited
    assert own.retries == RetryPolicy(count=5, delay=0.0, backoff=2.0, max_delay=60.0)
    assert own.retention == RetentionPolicy(keep_last=3)
    assert own.location_of("retries").line == 8
    assert config.job("none").retries is None
    assert config.job("none").retention is None
    assert config.job("zero").retries is None  # count 0: no retries
    assert config.job("zero").retention == inherits.retention
    assert config.job("short").retries == RetryPolicy(4)
    # without any of it
    plain = load(tmp_path, "jobs: [{id: a, function: m.f}]\n").job("a")
    assert (plain.retries, plain.retention) == (None, None)


def test_policies_in_the_snapshot(tmp_path: Path) -> None:
    config = load(tmp_path, POLICIES)
    snapshot = config.job("inherits").snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["retries"] == {"count": 2, "delay": 10.0, "backoff": 1.0, "max_delay": None}
    assert snapshot["retention"] == {
        "keep_last": 50,
        "keep_for": 2592000.0,
        "logs": {"DEBUG": 86400.0, "INFO": 604800.0},
    }
    none = config.job("none").snapshot()
    assert (none["retries"], none["retention"]) == (None, None)
    # policies do not make a job outdated
    assert config.job("own").definition_hash == config.job("none").definition_hash


def test_retry_delays() -> None:
    policy = RetryPolicy(count=5, delay=30, backoff=2, max_delay=100)
    assert [policy.delay_before(n) for n in range(1, 6)] == [30, 60, 100, 100, 100]
    assert RetryPolicy(3, delay=1.5).delay_before(3) == 1.5  # backoff 1: the same each time
    assert RetryPolicy(3).delay_before(2) == 0.0
    assert RetryPolicy(3, delay=1, backoff=10).delay_before(5) == 10_000
    assert RetryPolicy(9999, delay=1, backoff=10).delay_before(9999) == math.inf  # no overflow
    assert RetryPolicy(9999, delay=1, backoff=10, max_delay=5).delay_before(9999) == 5
    with pytest.raises(ValueError, match="from 1"):
        policy.delay_before(0)


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(-1),
        lambda: RetryPolicy(True),  # type: ignore[arg-type]
        lambda: RetryPolicy(1, delay=-1),
        lambda: RetryPolicy(1, backoff=0.5),
        lambda: RetryPolicy(1, max_delay=math.nan),
        lambda: RetentionPolicy(keep_last=0),
        lambda: RetentionPolicy(keep_for=-1),
        lambda: RetentionPolicy(logs={"DEBUG": 1.0}),  # type: ignore[dict-item]
        lambda: RunnerSettings(heartbeat=0),
        lambda: RunnerSettings(heartbeat=10, heartbeat_timeout=10),
        lambda: RunnerSettings(kill_grace=-1),
    ],
)
def test_policies_refuse_bad_values(make: Any) -> None:
    with pytest.raises(ValueError):
        make()


@pytest.mark.skipif(os.environ.get("JOBCONTROL_TEST_DEFAULT_ISOLATION", "pool") != "pool",
                    reason="this run switched the default; the test checks the code's own")
def test_a_job_that_says_no_isolation_gets_the_pool(tmp_path: Path) -> None:
    assert load(tmp_path, JOB).job("a").isolation == "pool"
    assert JobDefinition(id="a", function="m.f", title="a").isolation == "pool"


def test_runner_settings(tmp_path: Path) -> None:
    assert load(tmp_path, "jobs: []\n").runner == RunnerSettings(5.0, 60.0, 5.0)
    assert load(tmp_path, "runner:\njobs: []\n").runner == RunnerSettings()
    config = load(tmp_path, "runner: {heartbeat: 500ms, heartbeat_timeout: 3s}\njobs: []\n")
    assert config.runner == RunnerSettings(heartbeat=0.5, heartbeat_timeout=3.0, kill_grace=5.0)
    config = load(tmp_path, "runner: {heartbeat: 2m, heartbeat_timeout: 10m, kill_grace: 0}\n"
                            "jobs: []\n")
    assert config.runner == RunnerSettings(120.0, 600.0, 0.0)
    assert config.runner.as_json() == {
        "heartbeat": 120.0, "heartbeat_timeout": 600.0, "kill_grace": 0.0,
        "outcome_retry": 300.0, "max_builds_per_worker": 100,
        "max_worker_memory": None,
    }
    config = load(tmp_path, "runner: {max_builds_per_worker: 5, max_worker_memory: 1GB}\n"
                            "jobs: []\n")
    assert (config.runner.max_builds_per_worker, config.runner.max_worker_memory) == (5, 10**9)


# --------------------------------------------------------------------------- secrets


SECRET_JOB = """\
jobs:
  - id: mail
    title: Mail with hunter2
    function: m.send
    args: [smtp://bob:hunter2@mail.example, [{api_key: k-12345}]]
    kwargs:
      user: bob
      password: hunter2
      nested: {DB_Password: 4242, Token: [t0k3n-a, t0k3n-b], ok: 1}
      note: the password is hunter2
      fine: null
"""


def masked_payload(job: JobDefinition) -> str:
    """What definition_hash hashes, rebuilt from the snapshot."""
    snap = job.snapshot()
    payload = {"function": snap["function"], "args": snap["args"], "kwargs": snap["kwargs"]}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def test_secret_keys_are_masked_in_snapshot_and_hash(tmp_path: Path) -> None:
    config = load(tmp_path, SECRET_JOB)
    job = config.job("mail")
    # the job is called with the real values
    assert job.kwargs["password"] == "hunter2"
    assert job.args[0] == "smtp://bob:hunter2@mail.example"
    snapshot = job.snapshot()
    assert snapshot["kwargs"] == {
        "user": "bob",
        "password": "***",
        "nested": {"DB_Password": "***", "Token": ["***", "***"], "ok": 1},
        "note": "the password is ***",
        "fine": None,
    }
    assert snapshot["args"] == ["smtp://bob:***@mail.example", [{"api_key": "***"}]]
    assert snapshot["title"] == "Mail with ***"
    text = json.dumps(snapshot)
    for secret in ("hunter2", "4242", "t0k3n", "k-12345"):
        assert secret not in text
        assert secret not in masked_payload(job)
    assert config.secrets == {"hunter2", "4242", "t0k3n-a", "t0k3n-b", "k-12345"}
    assert job.secrets == config.secrets
    # the hash is of the masked definition: no hash of a secret is stored
    expected = hashlib.sha256(masked_payload(job).encode()).hexdigest()
    assert job.definition_hash == expected
    # a rotated password changes nothing that decides "outdated"
    rotated = load(tmp_path, SECRET_JOB.replace("hunter2", "correct-horse")).job("mail")
    assert rotated.definition_hash == job.definition_hash
    assert rotated.snapshot() == snapshot
    # secrets stay out of reprs, but the definition still compares and pickles
    assert "hunter2" not in repr(config)
    assert "password': '***'" in repr(job)
    assert pickle.loads(pickle.dumps(job)) == job


def test_masking_keeps_retvals_and_plain_values(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        jobs:
          - {id: login, function: m.login}
          - id: use
            function: m.use
            dependencies: [login]
            kwargs: {token: !retval login, passwords: [1, 2], passes: [3],
                     when: 2024-01-02, ok: true}
        """,
    )
    snapshot = config.job("use").snapshot()
    assert snapshot["kwargs"]["token"] == {"!retval": "login"}
    # values under a secret-looking key are masked, whatever their type (booleans tell nothing)
    assert snapshot["kwargs"]["passwords"] == ["***", "***"]
    assert snapshot["kwargs"]["passes"] == [3]  # "passes" is not a secret word
    assert snapshot["kwargs"]["when"] == "2024-01-02"
    assert config.secrets == {"1", "2"}


def test_hash_unchanged_without_secrets(tmp_path: Path) -> None:
    job = load(tmp_path, simple("{days: 7, region: eu}")).job("a")
    assert job.secrets == frozenset()
    payload = b'{"args":[],"function":"m.f","kwargs":{"days":7,"region":"eu"}}'
    assert job.definition_hash == hashlib.sha256(payload).hexdigest()


def test_env_tag_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JC_TEST_DB_URL", "postgresql://app:s3cret-pw@db/app")
    monkeypatch.setenv("JC_TEST_SMTP", "smtp-pass-9")
    monkeypatch.setenv("JC_TEST_REGION", "eu-west")
    config = load(
        tmp_path,
        """\
        storage: !env JC_TEST_DB_URL
        secrets: [!env JC_TEST_SMTP, literal-secret]
        jobs:
          - id: a
            function: m.f
            args: [!env JC_TEST_REGION]
            kwargs: {server: !env JC_TEST_SMTP, msg: "uses literal-secret"}
        """,
    )
    assert config.storage == "postgresql://app:s3cret-pw@db/app"
    job = config.job("a")
    assert job.args == ("eu-west",)  # the real value, to call the job with
    assert job.kwargs["server"] == "smtp-pass-9"
    # every !env value is a secret, wherever it was read; so is every listed value, and
    # the storage URL's password
    assert config.secrets == {
        "postgresql://app:s3cret-pw@db/app",
        "s3cret-pw",
        "smtp-pass-9",
        "eu-west",
        "literal-secret",
    }
    snapshot = job.snapshot()
    assert snapshot["args"] == ["***"]
    assert snapshot["kwargs"] == {"server": "***", "msg": "uses ***"}
    masker = config.masker
    assert masker.text("connect to smtp-pass-9 at eu-west") == "connect to *** at ***"
    assert job.masker.text("literal-secret!") == "***!"
    # the rendered text holds the tag, not the value
    assert "smtp-pass-9" not in config.rendered


def test_env_tag_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JC_TEST_UNSET", raising=False)
    error = fails(tmp_path, JOB + "    kwargs:\n      password: !env JC_TEST_UNSET\n")
    assert error.message == "environment variable JC_TEST_UNSET is not set"
    assert (error.line, error.column) == (5, 17)
    error = fails(tmp_path, "secrets:\n  - !env JC_TEST_UNSET\njobs: []\n")
    assert (error.line, error.column, error.message) == (
        2, 5, "environment variable JC_TEST_UNSET is not set"
    )


def test_env_values_never_appear_in_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JC_TEST_PW", "hunter2")
    error = fails(tmp_path, JOB + "    isolation: !env JC_TEST_PW\n")
    assert "hunter2" not in str(error)
    assert error.message == "job 'a': isolation must be 'process', 'inline' or 'pool', got '***'"
    error = fails(tmp_path, JOB + "    timeout: !env JC_TEST_PW\n")
    assert "hunter2" not in str(error)
    assert (error.line, error.column) == (4, 14)


def test_empty_secrets_mask_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JC_TEST_EMPTY", "")
    config = load(tmp_path, "secrets: ['', !env JC_TEST_EMPTY]\njobs: []\n")
    assert config.secrets == frozenset()
    assert config.masker.text("abc") == "abc"


def test_executor_and_queues(tmp_path: Path) -> None:
    config = load(tmp_path, """\
        executor: {type: celery, broker: "amqp://jc:s3cret@mq:5672//", queue: main}
        jobs:
          - {id: a, function: m.f, queue: gpu}
          - {id: b, function: m.g}
        """)
    assert config.executor.remote
    assert config.executor.broker == "amqp://jc:s3cret@mq:5672//"
    assert [config.queue_of(job) for job in config.jobs.values()] == ["gpu", "main"]
    assert config.jobs["a"].snapshot()["queue"] == "gpu"
    assert "s3cret" in config.secrets  # the broker's password is masked like the storage's


def test_the_local_executor_is_the_default(tmp_path: Path) -> None:
    config = load(tmp_path, JOB)
    assert not config.executor.remote
    assert config.executor.type == "local"
    assert config.queue_of(config.jobs["a"]) == "jobcontrol"
