"""Parameters: ``params:`` typed with defaults, ``build --param``, refusals in one line with
their own exit code, values passed as keyword arguments and recorded on the build and its
run, and the rule that a build with parameters of its own is not the job's last success.
Every backend (the ``storage`` fixture)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobcontrol import JobControl
from jobcontrol.config import load_config
from jobcontrol.errors import ConfigError, ExitCode, ParamError
from jobcontrol.storage import Storage
from tests.support import Cli, make_project

CONFIG = """\
jobs:
  - id: daily
    function: runjobs.typed
    isolation: inline
    params:
      day: {type: date, default: 2026-12-01}
      limit: {type: int, default: 10}
      ratio: {type: float, default: 0.5}
      loud: {type: bool, default: false}
      name: {default: all}
  - id: summary
    function: jobfuncs.make
    args: [summary]
    dependencies: [daily]
    isolation: inline
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return make_project(tmp_path, CONFIG, modules=("runjobs",))


@pytest.fixture
def cli(config: Path, storage: Storage) -> Cli:
    return Cli(config, storage)


@pytest.fixture
def jc(config: Path, storage: Storage) -> JobControl:
    return JobControl.from_config(config, storage=storage)


def result(storage: Storage, build_id: int) -> dict:
    stored = storage.get_build(build_id).result
    assert stored is not None
    return dict(json.loads(stored.data))


def test_defaults_are_passed_typed(cli: Cli, storage: Storage) -> None:
    [build] = json.loads(cli("build", "daily", "--format", "json").output)
    assert result(storage, build["id"]) == {
        "day": "2026-12-01", "day_type": "date", "limit": 10, "limit_type": "int",
        "ratio": 0.5, "loud": False, "name": "all"}
    assert build["params"] is None  # all defaults: an ordinary build
    stored = storage.get_build(build["id"])
    assert stored.definition["param_values"] == {"day": "2026-12-01", "limit": 10,
                                                  "ratio": 0.5, "loud": False, "name": "all"}


def test_given_values_are_converted_passed_and_recorded(cli: Cli, storage: Storage) -> None:
    out = cli("build", "daily", "--param", "day=2020-02-29", "--param", "limit=3",
              "--param", "loud=yes", "--param", "ratio=2", "--format", "json").output
    [build] = json.loads(out)
    assert result(storage, build["id"]) == {
        "day": "2020-02-29", "day_type": "date", "limit": 3, "limit_type": "int",
        "ratio": 2.0, "loud": True, "name": "all"}
    own = {"day": "2020-02-29", "limit": 3, "ratio": 2.0, "loud": True}
    assert build["params"] == own and storage.get_build(build["id"]).params == own
    run = storage.get_run(build["run"])
    assert run.params == {"daily": {**own, "name": "all"}}
    assert "day=2020-02-29" in cli("show", "--run", str(run.id)).output
    assert "day=2020-02-29" in cli("show", str(build["id"])).output


@pytest.mark.parametrize(("given", "message"), [
    ("dya=2020-01-01", "Error: job 'daily', parameter 'dya': unknown parameter (did you mean "
                       "'day'?) (its parameters: day, limit, ratio, loud, name)"),
    ("limit=ten", "Error: job 'daily', parameter 'limit': expected a whole number, got 'ten' "
                  "(int)"),
    ("day=2020-13-01", "Error: job 'daily', parameter 'day': expected a date (YYYY-MM-DD), got "
                       "'2020-13-01' (date)"),
    ("loud=maybe", "Error: job 'daily', parameter 'loud': expected true or false, got 'maybe' "
                   "(bool)"),
])
def test_a_refused_parameter_is_one_line_with_its_exit_code_and_builds_nothing(
        cli: Cli, storage: Storage, given: str, message: str) -> None:
    refused = cli("build", "daily", "--param", given, code=ExitCode.PARAMS)
    assert refused.output.strip() == message
    dry = cli("build", "daily", "--dry-run", "--param", given, code=ExitCode.PARAMS)
    assert dry.output.strip() == message
    assert storage.list_builds() == [] and storage.list_runs() == []


def test_a_parameter_without_a_value_is_a_usage_error(cli: Cli) -> None:
    out = cli("build", "daily", "--param", "day", code=ExitCode.USAGE).output
    assert "'day': give NAME=VALUE" in out


def test_a_job_without_that_parameter_refuses_it(cli: Cli) -> None:
    out = cli("build", "summary", "--param", "day=2020-01-01", code=ExitCode.PARAMS).output
    assert "parameter 'day': unknown parameter" in out and "(its parameters: none)" in out


def test_a_build_with_its_own_parameters_is_not_the_last_success(
        jc: JobControl, storage: Storage) -> None:
    [plain] = jc.build("daily")
    [summary] = jc.build("summary")
    assert summary.dependency_builds == {"daily": plain.id}
    [special] = jc.build("daily", params={"day": "2019-01-01"})
    assert special.params == {"day": "2019-01-01"}
    [daily] = jc.status(["daily"])
    assert daily.last_build is not None and daily.last_build.id == special.id
    assert daily.last_success is not None and daily.last_success.id == plain.id
    # summary consumed the last default build: not outdated by the one-off
    assert not jc.outdated()["summary"].outdated
    [again] = jc.build("summary")
    assert again.dependency_builds == {"daily": plain.id}
    # a build with the defaults given explicitly is an ordinary one
    [explicit] = jc.build("daily", params={"day": "2026-12-01", "limit": "10"})
    assert explicit.params is None
    assert jc.status(["daily"])[0].last_success.id == explicit.id  # type: ignore[union-attr]
    # it is the dependency's new last success; with the value summary used, it leaves
    # summary up to date (the same-value rule), saying so
    verdict = jc.outdated()["summary"]
    assert not verdict.outdated
    assert verdict.notes == (f"dependency daily rebuilt (build {explicit.id}) with the same "
                             f"value as build {plain.id}, which this job used: not outdated",)


@pytest.mark.parametrize(("params", "message"), [
    ("{limit: {type: int, default: 1.5}}",
     "params: limit: default: expected a whole number, got 1.5"),
    ("{limit: {type: integer, default: 1}}",
     "params: limit: type must be one of string, int, float, bool, date, got 'integer'"),
    ("{limit: {type: int}}", "params: limit: missing 'default'"),
    ("{limit: 3}", "params: limit must be a mapping with 'default'"),
    ("{2x: {default: 1}}", "params: '2x' is not a parameter name"),
    ("{limit: {default: 1, help: x}}", "params: limit: unknown key 'help'"),
])
def test_bad_params_are_config_errors_with_their_place(tmp_path: Path, params: str,
                                                       message: str) -> None:
    path = make_project(tmp_path, f"""\
        jobs:
          - id: a
            function: jobfuncs.noop
            params: {params}
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{path}:4:")


def test_a_kwarg_that_is_also_a_parameter_is_refused(tmp_path: Path) -> None:
    path = make_project(tmp_path, """\
        jobs:
          - id: a
            function: jobfuncs.noop
            kwargs: {tag: x}
            params: {tag: {default: y}}
        """)
    with pytest.raises(ConfigError, match="'tag' is both a kwarg and a parameter"):
        load_config(path)


def test_a_shell_job_has_no_params(tmp_path: Path) -> None:
    path = make_project(tmp_path, """\
        jobs:
          - id: a
            command: "true"
            params: {tag: {default: y}}
        """)
    with pytest.raises(ConfigError, match="params is for a function"):
        load_config(path)


def test_param_error_names_job_and_parameter() -> None:
    error = ParamError("daily", "day", "expected a date")
    assert str(error) == "job 'daily', parameter 'day': expected a date"
    assert error.exit_code == ExitCode.PARAMS
