"""Outdated when code or inputs change, and not when a dependency's new build returned the
value a job used: ``status --why`` names the change, ``build --if-outdated`` and
``--deps`` act on it. Every backend (the ``storage`` fixture)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobcontrol.storage import Storage
from tests.support import Cli, make_project

SOURCE = '''\
from pathlib import Path

HERE = Path(__file__).parent


def fetch():
    """What fetch found: value.txt (not an input: the job reads what it likes)."""
    return (HERE / "value.txt").read_text()


def report(value):
    return value.upper()


def versioned():
    return 1


made = staticmethod(len)


def served():
    return "one"
'''

CONFIG = """\
jobs:
  - {{id: fetch, function: {mod}.fetch, isolation: inline,
     inputs: ["data/*.csv", "other/file.txt"]}}
  - {{id: report, function: {mod}.report, args: [!retval fetch], dependencies: [fetch],
     isolation: inline}}
  - {{id: versioned, function: {mod}.versioned, code_version: {version}, isolation: inline}}
  - {{id: made, function: {mod}.made, args: [[1]], isolation: inline}}
  - {{id: served, function: {mod}.served}}
"""


class Project:
    """A config beside a job module of its own name (no other test's module is loaded
    under it), its data files, and the CLI on one storage."""

    def __init__(self, folder: Path, storage: Storage) -> None:
        self.folder = folder
        self.module = f"pipe_{uuid.uuid4().hex[:12]}"
        self.source = folder / f"{self.module}.py"
        self.config = make_project(folder, CONFIG.format(mod=self.module, version='"1"'))
        self.source.write_text(SOURCE)
        (folder / "data").mkdir()
        self.write("data/a.csv", "a,1\n")
        self.write("value.txt", "same")
        self.cli = Cli(self.config, storage)

    def write(self, name: str, text: str) -> None:
        (self.folder / name).write_text(text)

    def edit(self, old: str, new: str) -> None:
        """Edit the job module, and forget it was imported: as a new process sees it."""
        self.source.write_text(self.source.read_text().replace(old, new))
        self.reload()

    def reload(self) -> None:
        sys.modules.pop(self.module, None)

    def status(self) -> dict[str, dict[str, Any]]:
        rows = json.loads(self.cli("status", "--why", "--format", "json").output)
        return {row["job"]: row for row in rows}

    def reasons(self) -> dict[str, list[str]]:
        return {job: row["outdated_reasons"] for job, row in self.status().items()}

    def built(self, *args: str) -> list[str]:
        """The jobs ``build ARGS`` built, in order."""
        made = json.loads(self.cli("build", *args, "--format", "json").output)
        return [build["job"] for build in made]


@pytest.fixture
def project(tmp_path: Path, storage: Storage) -> Any:
    made = Project(tmp_path, storage)
    yield made
    made.reload()


def test_an_edited_function_makes_its_job_outdated_and_build_rebuilds_only_it(
        project: Project) -> None:
    assert project.built("report", "--deps") == ["fetch", "report"]
    assert project.reasons()["report"] == []
    project.edit("return value.upper()", "return value.lower()")
    reasons = project.reasons()
    assert reasons["report"] == [f"function {project.module}.report changed since build 2"]
    assert reasons["fetch"] == []
    assert "changed since build 2" in project.cli("status", "report", "--why").output
    assert project.module not in sys.modules  # status read the file, imported nothing
    # nothing upstream is outdated: --deps and --if-outdated build report alone
    assert project.built("report", "--deps", "--if-outdated") == ["report"]
    assert project.reasons()["report"] == []
    assert project.built("report", "--deps", "--if-outdated") == []


def test_a_process_still_running_the_old_code_records_the_old_version(
        project: Project) -> None:
    project.built("report", "--deps")
    # edited, but this process keeps the module it imported: a build here runs old code
    project.source.write_text(project.source.read_text().replace(
        "return value.upper()", "return value.title()"))
    [build] = json.loads(project.cli("build", "report", "--format", "json").output)
    show = json.loads(project.cli("show", str(build["id"]), "--format", "json").output)
    assert show["retval"] == "SAME"  # the old code ran
    project.reload()  # a new process: the file's code is not the one build 3 ran
    assert project.reasons()["report"] == [
        f"function {project.module}.report changed since build {build['id']}"]


def test_a_reloaded_module_records_its_new_version(project: Project) -> None:
    import importlib

    project.built("report", "--deps")
    project.source.write_text(project.source.read_text().replace(
        "return value.upper()", "return value.title()"))
    importlib.reload(sys.modules[project.module])  # the same module object, new code
    [build] = json.loads(project.cli("build", "report", "--format", "json").output)
    show = json.loads(project.cli("show", str(build["id"]), "--format", "json").output)
    assert show["retval"] == "Same"  # the new code ran
    assert project.reasons()["report"] == []


def test_a_build_queued_for_workers_records_what_it_is_made_with(project: Project,
                                                                storage: Storage) -> None:
    from jobcontrol import JobControl

    config = project.config
    config.write_text("executor: {type: celery, broker: 'redis://127.0.0.1:1/0'}\n"
                      + config.read_text())
    jc = JobControl(JobControl.from_config(config, storage=storage).config, storage,
                    sender=lambda build_id, queue, job=None: None)
    [queued] = jc.submit(["fetch"])
    recorded = storage.get_build(queued.id).definition
    assert recorded["code"]["version"] is not None and recorded["code"]["from"] == "function"
    assert list(recorded["input_files"]) == ["data/a.csv"]
    assert project.module not in sys.modules  # read from the file: nothing imported


def test_code_version_stands_for_the_code(project: Project) -> None:
    assert project.built("versioned") == ["versioned"]
    project.edit("return 1", "return 2")
    assert project.reasons()["versioned"] == []  # the code_version did not change
    project.config.write_text(CONFIG.format(mod=project.module, version="2"))
    assert project.reasons()["versioned"] == [
        "code version changed since build 1 (code_version 1 -> code_version 2)"]
    [build] = json.loads(project.cli("build", "versioned", "--format", "json").output)
    show = json.loads(project.cli("show", str(build["id"]), "--format", "json").output)
    assert show["definition"]["code"] == {"version": "2", "from": "code_version",
                                          "problem": None}
    assert show["definition"]["code_version"] == "2"
    assert "code_version=2" in project.cli("job", "versioned").output
    assert "inputs: data/*.csv, other/file.txt" in project.cli("job", "fetch").output


def test_a_shell_job_s_code_is_its_command_not_jobcontrol_s_runner_of_commands(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell job records the code version "command" (its definition hash covers the
    command): a new jobcontrol, whose runner of commands reads differently, leaves it up
    to date."""
    from jobcontrol import fingerprints

    project.config.write_text(CONFIG.format(mod=project.module, version='"1"')
                              + '  - {id: shell, command: "echo hi", isolation: inline}\n')
    assert project.built("shell") == ["shell"]
    [build] = json.loads(project.cli("builds", "shell", "--format", "json").output)
    show = json.loads(project.cli("show", str(build["id"]), "--format", "json").output)
    assert show["definition"]["code"] == {"version": "command", "from": "command",
                                          "problem": None}
    # as if jobcontrol's own runner of commands had changed: every function's source differs
    monkeypatch.setattr(fingerprints, "_source", lambda function, read: f"new {function}")
    fingerprints._VERSIONS.clear()
    assert project.reasons()["shell"] == []
    project.config.write_text(CONFIG.format(mod=project.module, version='"1"')
                              + '  - {id: shell, command: "echo ho", isolation: inline}\n')
    assert project.reasons()["shell"] == ["definition changed since build "
                                          f"{build['id']}"]


def test_a_function_whose_source_cannot_be_read_is_not_compared_and_says_so_when_asked(
        project: Project) -> None:
    assert project.built("made") == ["made"]
    row = project.status()["made"]
    assert row["outdated"] is False
    assert row["outdated_notes"] == [
        "code not compared: 'made' is not a def or class written in "
        f"{project.module}.py (bound by an assignment?)"]
    assert "code not compared" in project.cli("status", "made", "--why").output
    assert "code not compared" not in project.cli("status", "made").output


def test_input_files_changed_appeared_or_gone_make_the_job_outdated(project: Project) -> None:
    assert project.built("fetch") == ["fetch"]
    assert project.reasons()["fetch"] == []
    project.write("data/a.csv", "a,2\n")
    assert project.reasons()["fetch"] == ["input data/a.csv changed since build 1"]
    assert project.built("fetch", "--if-outdated") == ["fetch"]
    assert project.built("fetch", "--if-outdated") == []
    project.write("data/b.csv", "b\n")  # a new file the glob matches
    (project.folder / "other").mkdir()
    project.write("other/file.txt", "named")  # a file named outright appears
    assert project.reasons()["fetch"] == ["input data/b.csv appeared since build 2",
                                          "input other/file.txt appeared since build 2"]
    assert project.built("fetch", "--if-outdated") == ["fetch"]
    (project.folder / "data" / "a.csv").unlink()
    assert project.reasons()["fetch"] == ["input data/a.csv gone since build 3"]


def test_a_pattern_matching_no_file_is_noted_and_check_warns(project: Project) -> None:
    """A typo in ``inputs:`` (or files not made yet) compares nothing: ``status --why``
    and ``check`` say so, and neither is an error."""
    assert project.built("fetch") == ["fetch"]
    row = project.status()["fetch"]
    assert row["outdated"] is False
    assert row["outdated_notes"] == ["input pattern other/file.txt matches no file"]
    assert "other/file.txt matches no file" in project.cli("status", "fetch", "--why").output
    checked = project.cli("check", "--no-storage")  # exit 0: a warning
    assert (f"Warning: {project.config}:3:14: job 'fetch': inputs pattern 'other/file.txt' "
            "matches no file") in checked.output
    (project.folder / "other").mkdir()
    project.write("other/file.txt", "now it is there")
    assert project.status()["fetch"]["outdated_notes"] == []
    assert "Warning" not in project.cli("check", "--no-storage").output


def test_many_input_changes_are_counted_not_listed(project: Project) -> None:
    project.built("fetch")
    for number in range(7):
        project.write(f"data/new{number}.csv", "x")
    assert project.reasons()["fetch"] == [
        *(f"input data/new{n}.csv appeared since build 1" for n in range(4)),
        "3 more input changes since build 1"]


def test_an_input_rewritten_with_the_same_content_changes_nothing(project: Project) -> None:
    project.built("fetch")
    path = project.folder / "data" / "a.csv"
    path.write_text("a,1\n")
    later = path.stat().st_mtime_ns + 10**10
    os.utime(path, ns=(later, later))
    assert project.reasons()["fetch"] == []


def test_a_dependency_rebuilt_with_the_same_value_leaves_its_dependents_up_to_date(
        project: Project) -> None:
    project.built("report", "--deps")
    assert project.built("fetch") == ["fetch"]  # found nothing new: the same value
    row = project.status()["report"]
    assert row["outdated"] is False
    assert row["outdated_notes"] == [
        "dependency fetch rebuilt (build 3) with the same value as build 1, which this "
        "job used: not outdated"]
    assert "same value" in project.cli("status", "report", "--why").output
    project.write("value.txt", "new")
    assert project.built("fetch") == ["fetch"]
    assert project.reasons()["report"] == [
        "dependency fetch has a newer build (4; this job used build 1)"]


def test_a_run_rebuilds_nothing_after_a_dependency_that_found_nothing_new(
        project: Project) -> None:
    project.built("report", "--deps")
    project.write("data/a.csv", "a,2\n")  # fetch is outdated, so report is too
    assert project.reasons()["report"] == ["dependency fetch is outdated"]
    # fetch is rebuilt and returns what report used: report is not
    assert project.built("report", "--deps", "--if-outdated") == ["fetch"]
    reasons = project.reasons()
    assert reasons["fetch"] == reasons["report"] == []
    project.write("data/a.csv", "a,3\n")
    project.write("value.txt", "other")
    assert project.built("report", "--deps", "--if-outdated") == ["fetch", "report"]


def test_the_web_job_page_and_api_name_the_change(project: Project, storage: Storage) -> None:
    pytest.importorskip("flask")
    from jobcontrol import JobControl
    from jobcontrol.web import create_app

    project.built("report", "--deps")
    project.built("fetch")  # the same value
    project.edit("return value.upper()", "return value.lower()")
    client = create_app(JobControl.from_config(project.config, storage)).test_client()
    [row] = [r for r in client.get("/api/v1/jobs").get_json() if r["job"] == "report"]
    assert row["outdated_reasons"] == [f"function {project.module}.report changed since "
                                       "build 2"]
    assert row["outdated_notes"] == [
        "dependency fetch rebuilt (build 3) with the same value as build 1, which this "
        "job used: not outdated"]
    assert project.module not in sys.modules  # judging it did not import the job's module
    # (the jobs page imports each job's function, to flag the ones that do not import)
    assert "report changed since build 2" in client.get("/").get_data(as_text=True)
    html = client.get("/jobs/report").get_data(as_text=True)  # (this page shows its doc)
    assert f"outdated: function {project.module}.report changed since build 2" in html
    assert "with the same value as build 1" in html


@pytest.mark.parametrize(("text", "message"), [
    ("inputs: data/*.csv", "inputs must be a list, got string (write [data/*.csv])"),
    ("inputs: [3]", "each of inputs must be a glob pattern (a string), got int"),
    ("inputs: {a: 1}", "inputs must be a list of glob patterns, got mapping"),
    ("code_version: true", 'code_version must be a string or a number such as "3", got bool'),
    ("code_version: [1]", 'code_version must be a string or a number such as "3", got list'),
    ("code_version: ''", "code_version must not be empty"),
])
def test_bad_inputs_and_code_versions_name_the_line(tmp_path: Path, text: str,
                                                    message: str) -> None:
    config = make_project(tmp_path, f"""\
        jobs:
          - id: a
            function: jobfuncs.noop
            {text}
        """)
    result = Cli(config)("check", code=2)
    assert "jobs.yaml:4:" in result.output
    assert message in result.output


def test_a_numeric_code_version_is_its_text(tmp_path: Path) -> None:
    from jobcontrol.config import load_config

    config = load_config(make_project(tmp_path, textwrap.dedent("""\
        jobs:
          - {id: a, function: jobfuncs.noop, code_version: 3, inputs: [x/*.csv]}
        """)))
    assert config.jobs["a"].code_version == "3"
    assert config.jobs["a"].inputs == ("x/*.csv",)
