"""Tests of jobcontrol.config: loading, defaults, !retval, Jinja, hashes and every mistake."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import sys
import textwrap
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import yaml

from jobcontrol.config import (
    RENDERED_NOTE,
    Config,
    JobDefinition,
    Location,
    RetvalRef,
    _loader_class,
    find_config_path,
    load_config,
    parse_config,
)
from jobcontrol.errors import ConfigError, CycleError, UnknownJobError


@pytest.fixture(params=["libyaml", "pure-python"])
def yaml_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with libyaml's loader (when installed) and with PyYAML's own."""
    if request.param == "pure-python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    _loader_class.cache_clear()
    yield request.param
    _loader_class.cache_clear()  # monkeypatch restores yaml afterwards; pick again then


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
    }
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
        "isolation must be 'process' or 'inline', got 'proces' (did you mean 'process'?)",
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
        "tag !!python/name:os.system is not allowed: only plain YAML and !retval",
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
]


@pytest.mark.usefixtures("yaml_loader")
@pytest.mark.parametrize(("text", "line", "column", "part"), MISTAKES)
def test_mistakes_are_located(
    tmp_path: Path, text: str, line: int | None, column: int | None, part: str
) -> None:
    error = fails(tmp_path, text)
    assert part in error.message
    assert (error.line, error.column) == (line, column), str(error)


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
        assert f"tag {tag} is not allowed: only plain YAML and !retval" in error.message
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
