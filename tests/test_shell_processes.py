"""Shell jobs run by real ``jobcontrol`` processes: lines reach ``logs --follow`` while the
command runs, a cancel kills what the command started, ``run-due`` builds a scheduled one;
on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import PROJECT_PARAMS, ROOT, Project, alive, until, wait_for

CONFIG = """\
runner:
  heartbeat: 0.2s
  kill_grace: 1s
jobs:
  - id: talker
    command: "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"
  - id: talker_inline
    command: "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second"
    isolation: inline
  - id: spawner
    command: "sleep 600 & echo $! > spawner.pid; wait"
  - id: spawner_inline
    command: "sleep 600 & echo $! > spawner_inline.pid; wait"
    isolation: inline
  - id: spawner_process
    command: "sleep 600 & echo $! > spawner.pid; wait"
    isolation: process
  - id: tick
    command: [sh, -c, 'echo "tick $JOBCONTROL_BUILD_ID"']
    schedule: "* * * * * *"
"""


@pytest.fixture(params=PROJECT_PARAMS)
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, CONFIG)


def running_build(project: Project, job_id: str) -> int:
    """The id of ``job_id``'s running build, once there is one."""
    found: list[int] = []

    def look() -> bool:
        code, out, err = project.run("builds", job_id, "--state", "running", "--format", "json")
        assert code == 0, err
        found.extend(b["id"] for b in json.loads(out))
        return bool(found)

    until(look, f"a running build of {job_id}", seconds=30)
    return found[0]


def read_until(process: subprocess.Popen[str], text: str, seconds: float = 30) -> str:
    """What ``process`` printed, up to the line holding ``text``."""
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + seconds
    while text not in seen:
        assert time.monotonic() < deadline, f"{text!r} not printed; got {seen!r}"
        if select.select([process.stdout], [], [], 0.5)[0]:
            line = process.stdout.readline()
            assert line, f"the process ended before printing {text!r}; got {seen!r}"
            seen += line
    return seen


@pytest.mark.parametrize("job_id", ["talker", "talker_inline"])
def test_lines_reach_logs_follow_while_the_command_runs(project: Project, job_id: str) -> None:
    build = project.start("build", job_id)
    follow = None
    try:
        build_id = running_build(project, job_id)
        follow = project.start("logs", str(build_id), "--follow")
        assert "command: first" in read_until(follow, "first")
        assert project.show(build_id)["state"] == "running"  # waits for `go` still
        (project.config.parent / "go").touch()
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, err
        assert "command: second" in out
        _, err = build.communicate(timeout=60)
        assert build.returncode == 0, err
    finally:
        for process in (build, follow):
            if process is not None and process.poll() is None:
                process.kill()
                process.communicate()
    shown = project.show(build_id)
    assert (shown["state"], shown["retval"]) == ("success", 0)


@pytest.mark.parametrize("job_id", ["spawner", "spawner_inline"])
def test_cancel_kills_the_command_and_its_children(project: Project, job_id: str) -> None:
    build = project.start("build", job_id)
    try:
        pid = int(wait_for(project.config.parent / f"{job_id}.pid"))
        build_id = running_build(project, job_id)
        code, _, err = project.run("cancel", str(build_id))
        assert code == 0, err
        build.communicate(timeout=60)
    finally:
        if build.poll() is None:
            build.kill()
            build.communicate()
    until(lambda: not alive(pid), f"the command's child {pid} to die")
    assert project.show(build_id)["state"] == "cancelled"


def test_run_due_builds_a_scheduled_shell_job(project: Project) -> None:
    code, out, err = project.run("run-due", "--format", "json")
    assert code == 0, err
    [started] = json.loads(out)["started"]
    build = started["build"]
    assert (started["job"], build["state"]) == ("tick", "success")
    code, out, err = project.run("logs", str(build["id"]), "--format", "json")
    assert code == 0, err
    [record] = [json.loads(line) for line in out.splitlines()]
    assert (record["logger"], record["level"], record["message"]) == (
        "command", "INFO", f"tick {build['id']}")


def test_the_web_launches_a_shell_job(project: Project, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    from jobcontrol import JobControl
    from jobcontrol.web import create_app

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the launched build runs this checkout

    with JobControl.from_config(project.config, project.storage_url) as jc:
        client = create_app(jc).test_client()
        token = client.get("/api/v1/csrf").get_json()["csrf_token"]
        response = client.post("/api/v1/jobs/tick/launch", headers={"X-CSRFToken": token})
        assert response.status_code == 202, response.get_json()
        build_id = response.get_json()["build"]["id"]
        until(lambda: jc.get_build(build_id).state.finished, "the launched build to end")
        assert (jc.get_build(build_id).state.value, jc.get_build(build_id).retval) == (
            "success", 0)
        assert [r.message for r in jc.logs(build_id)] == [f"tick {build_id}"]


def test_the_command_of_a_killed_runner_is_killed_by_the_next_command(project: Project
                                                                      ) -> None:
    # a process build's command: a pool worker ends its process group, the command with
    # it, as soon as its runner dies (docs/explanation/isolation.rst); an inline command
    # is in a session of its own, which a killed runner cannot end (docs/howto/shell-jobs.rst)
    build = project.start("build", "spawner_process")
    try:
        pid = int(wait_for(project.config.parent / "spawner.pid"))
        build_id = running_build(project, "spawner_process")
    finally:
        build.kill()  # kill -9 of the runner: its build process dies with it
        build.communicate()
    assert alive(pid)  # what the command started lives on in the build's process group...
    code, _, err = project.run("reap")
    assert code == 0, err
    until(lambda: not alive(pid), f"the command's child {pid} to die")  # ...until now
    assert project.show(build_id)["state"] == "abandoned"
