"""Config mistakes through the CLI, and the commands around builds: jobs, job, graph,
check, config, install, completion, the live terminal output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from jobcontrol.cli import main
from jobcontrol.cli.build import TextObserver
from jobcontrol.models import Build, BuildState, ProgressItem
from jobcontrol.storage import Storage
from tests.support import Cli, make_project

GOOD = """\
jobs:
  - id: a
    title: Job A
    function: jobfuncs.make
    args: [a]
    tags: [first]
  - id: b
    function: jobfuncs:make
    dependencies: [a]
    kwargs: {tag: b, value: !retval a}
"""

MISTAKES = {
    "syntax": ("jobs:\n  - id: a\n    function: [unclosed\n", 4, "YAML"),
    "unknown key": ("jobs:\n  - id: a\n    function: jobfuncs.make\n    dependecies: []\n",
                    4, "unknown key 'dependecies'"),
    "duplicate id": ("jobs:\n  - {id: a, function: jobfuncs.make}\n"
                     "  - {id: a, function: jobfuncs.make}\n", 3, "duplicate job id 'a'"),
    "unknown dependency": ("jobs:\n  - {id: a, function: jobfuncs.make, dependencies: [zz]}\n",
                           2, "unknown dependency 'zz'"),
    "cycle": ("jobs:\n  - {id: a, function: jobfuncs.make, dependencies: [b]}\n"
              "  - {id: b, function: jobfuncs.make, dependencies: [a]}\n", 2,
              "dependency cycle: a -> b -> a"),
    "retval of non-dependency": ("jobs:\n  - {id: a, function: jobfuncs.make}\n"
                                 "  - id: b\n    function: jobfuncs.make\n"
                                 "    kwargs: {value: !retval a}\n", 5, "!retval a"),
    "python tag": ("jobs:\n  - id: a\n    function: jobfuncs.make\n"
                   "    kwargs: {x: !!python/object/apply:os.system [touch PWNED]}\n", 4,
                   "python/object/apply:os.system"),
    "bad duration": ("jobs:\n  - {id: a, function: jobfuncs.make, timeout: 10 minutes}\n", 2,
                     "timeout"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_config_mistakes_exit_2_with_file_and_line(tmp_path: Path, name: str) -> None:
    text, line, fragment = MISTAKES[name]
    config = make_project(tmp_path, text)
    for command in (["build", "a"], ["status"], ["check"]):
        result = Cli(config)(*command, code=2)
        assert result.output.count("\n") == 1, result.output
        assert result.output.startswith(f"Error: {config}:{line}:"), result.output
        assert fragment in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "jobcontrol.db").exists()


def test_missing_module_is_a_clear_error(tmp_path: Path, storage: Storage) -> None:
    config = make_project(tmp_path, "jobs:\n  - {id: a, function: nosuchmodule.run}\n")
    cli = Cli(config, storage)
    result = cli("build", "a", code=2)
    assert "job 'a': cannot import function 'nosuchmodule.run'" in result.output
    assert "No module named 'nosuchmodule'" in result.output
    assert result.output.count("\n") == 1
    assert storage.list_builds() == []
    assert "nosuchmodule" in cli("check", code=2).output


def test_missing_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("JOBCONTROL_CONFIG", raising=False)
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert "jobcontrol.yaml" in result.output and "-c" in result.output
    result = CliRunner().invoke(main, ["-c", "nope.yaml", "status"])
    assert result.exit_code == 2
    assert "nope.yaml" in result.output


def test_jobs_job_graph(tmp_path: Path) -> None:
    cli = Cli(make_project(tmp_path, GOOD), "memory://")
    table = cli("jobs").output
    assert re.search(r"a\s+Job A\s+jobfuncs.make\s+first", table)
    listed = json.loads(cli("jobs", "--format", "json").output)
    assert [j["id"] for j in listed] == ["a", "b"]
    assert listed[1]["kwargs"] == {"tag": "b", "value": {"!retval": "a"}}
    assert [j["id"] for j in json.loads(cli("jobs", "--tag", "first", "--format",
                                                 "json").output)] == ["a"]
    detail = cli("job", "b").output
    assert "def make(tag: 'str', value: 'object' = None) -> 'dict'" in detail
    assert "Returns what it got" in detail
    assert "dependencies: a" in detail
    data = json.loads(cli("job", "a", "--format", "json").output)
    assert data["dependents"] == ["b"]
    assert cli("graph", "--format", "dot").output.count('"a" -> "b";') == 1
    assert cli("graph").output == "a\nb  <- a\n"
    assert json.loads(cli("graph", "--format", "json").output) == {"a": [], "b": ["a"]}
    assert "unknown job 'c'" in cli("job", "c", code=2).output


def test_check_config_install(tmp_path: Path) -> None:
    config = make_project(tmp_path, GOOD)
    cli = Cli(config)
    assert cli("check", "--no-storage").output == (
        f"{config}: 2 jobs, all functions import and take their arguments\n"
        f"storage not checked (--no-storage)\n")
    assert not (tmp_path / "jobcontrol.db").exists()  # --no-storage: not opened
    rendered = cli("config").output
    assert "!retval a" in rendered and "title: Job A" in rendered
    assert json.loads(cli("config", "--format", "json").output)["jobs"][0]["id"] == "a"
    assert "schema version" in cli("install").output
    assert (tmp_path / "jobcontrol.db").exists()


def test_jinja_rendered_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGIONS", "eu,us")
    config = make_project(tmp_path, """\
        jobs:
        {% for region in env.REGIONS.split(",") %}
          - id: load_{{ region }}
            function: jobfuncs.make
            args: [{{ region }}]
        {% endfor %}
    """)
    cli = Cli(config, "memory://")
    assert cli("graph").output == "load_eu\nload_us\n"
    out = json.loads(cli("build", "load_us", "--format", "json").output)
    assert out[0]["state"] == "success"


def test_job_ids_complete_in_the_shell(tmp_path: Path) -> None:
    config = make_project(tmp_path, GOOD)
    result = CliRunner().invoke(
        main, [], prog_name="jobcontrol",
        env={"_JOBCONTROL_COMPLETE": "bash_complete",
             "COMP_WORDS": f"jobcontrol -c {config} build ", "COMP_CWORD": "4"},
    )
    assert result.output.split() == ["plain,a", "plain,b"]
    result = CliRunner().invoke(main, [], prog_name="jobcontrol",
                                env={"_JOBCONTROL_COMPLETE": "bash_source"})
    assert "_JOBCONTROL_COMPLETE=bash_complete" in result.output


def test_version_and_help() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("jobcontrol, version ")
    result = CliRunner().invoke(main, ["--help"])
    for command in ("build", "status", "builds", "show", "logs", "jobs", "job", "graph",
                    "delete", "install", "check", "config"):
        assert f"  {command} " in result.output


def test_live_terminal_output_draws_and_clears_progress(capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    import io

    out = io.StringIO()
    observer = TextObserver(live=True)
    observer.out = out
    build = Build(id=7, job_id="etl", state=BuildState.RUNNING)
    observer.build_started(build)
    observer.build_progress(build, ProgressItem((), 5, 10, "rows"))
    assert "#7 etl [############------------]  50% rows" in out.getvalue()
    observer.build_finished(Build(id=7, job_id="etl", state=BuildState.SUCCESS))
    assert out.getvalue().count("\r\x1b[2K") >= 1
    assert observer.progress == {}
