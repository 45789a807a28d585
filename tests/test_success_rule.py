"""Only ``success`` is a success: a ``skipped`` build (``SkipBuild``, or the placeholder a
schedule records for an instant whose job was still running) is never a job's last success,
never keeps it fresh for ``max_age`` and never meets a dependency, on every face: the storage's
summaries, the Python API, the CLI (``status``, ``check --freshness``, ``build``), the web page
and API; on memory, SQLite and PostgreSQL, and through real ``jobcontrol`` processes."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.rules.outdated import NEVER_BUILT
from jobcontrol.storage import Storage
from jobcontrol.web import create_app
from tests.processes import Project, wait_for
from tests.support import Cli, make_project

S = BuildState

CONFIG = """\
jobs:
  - id: src
    function: jobfuncs.maybe_skip
    args: [skip.flag]
    isolation: inline
    max_age: 1h
  - id: hung
    function: jobfuncs.noop
    isolation: inline
    schedule: "* * * * *"
    max_age: 1h
  - id: user
    function: jobfuncs.noop
    isolation: inline
    dependencies: [hung]
"""


def hang_under_cron(jc: JobControl) -> list[Any]:
    """``hung`` runs (a runner elsewhere, beating) while two scheduled instants come due:
    both are recorded as ``overlap`` skips. Returns those skipped builds."""
    running = jc.storage.claim_build("hung", concurrency=1, definition={}, definition_hash="",
                                     dependency_builds={}, host="elsewhere", pid=1)
    jc.storage.heartbeat([running.id])
    now = jc.storage.now()  # (a time to come would be a dry run: the two instants are past)
    skips = [skipped for _, _, skipped in jc.run_due(now=now - timedelta(minutes=1)).overlaps]
    skips += [skipped for _, _, skipped in jc.run_due(now=now).overlaps]
    assert [b.state for b in skips] == [S.SKIPPED, S.SKIPPED]
    return skips


def test_a_skip_is_never_the_last_success_on_any_face(tmp_path: Path, storage: Storage) -> None:
    config = make_project(tmp_path / "project", CONFIG)
    jc = JobControl.from_config(config, storage)
    cli = Cli(config, storage)
    [success] = jc.build("src")
    assert success.state is S.SUCCESS
    (config.parent / "skip.flag").write_text("")
    skipped = cli("build", "src", code=0)  # a skipped run did not fail: exit 0, as before
    assert "skipped" in skipped.output
    src_skip = jc.builds("src")[0]
    assert src_skip.state is S.SKIPPED
    overlaps = hang_under_cron(jc)

    # Python API
    status = {s.job.id: s for s in jc.status()}
    assert status["src"].last_state == "skipped"
    assert status["src"].last_success is not None and status["src"].last_success.id == success.id
    assert status["src"].stale is None
    assert status["hung"].last_build is not None
    assert status["hung"].last_build.id == overlaps[-1].id
    assert status["hung"].last_success is None
    assert status["hung"].stale == "never built successfully (max_age 1h)"
    assert NEVER_BUILT in status["hung"].outdated.reasons
    assert jc.stale_jobs() == {"hung": "never built successfully (max_age 1h)"}

    # CLI: status as JSON and as a table, check --freshness
    rows = {row["job"]: row for row in json.loads(cli("status", "--format", "json").output)}
    assert (rows["src"]["last_state"], rows["src"]["last_success"]) == ("skipped", success.id)
    assert rows["src"]["last_success_time"] is not None
    assert (rows["hung"]["last_state"], rows["hung"]["last_success"]) == ("skipped", None)
    assert rows["hung"]["last_success_time"] is None
    assert rows["hung"]["stale"] == "never built successfully (max_age 1h)"
    table = {line.split()[0]: line for line in cli("status").output.splitlines()[2:]}
    assert "STALE: never built successfully" in table["hung"]
    assert table["src"].rstrip().endswith("ok")
    fresh = cli("check", "--freshness", code=1).output
    assert "STALE hung: never built successfully (max_age 1h)" in fresh
    assert "STALE src" not in fresh

    # a dependency that only ever skipped is not met: exit 3, no build
    cli("build", "user", code=3)
    assert jc.builds("user") == []

    # web: the API and the jobs page
    client = create_app(jc, insecure_no_auth=True).test_client()
    api = {row["job"]: row for row in client.get("/api/v1/jobs").get_json()}
    assert api["src"]["last_success"] == success.id and api["hung"]["last_success"] is None
    page = client.get("/").get_data(as_text=True)
    hung_row = page.split('id="job-hung"')[1].split("</tr>")[0]
    src_row = page.split('id="job-src"')[1].split("</tr>")[0]
    cells = src_row.split("<td")  # job, recent builds, tags, last build, last success
    assert f"/builds/{success.id}" in cells[5] and f"/builds/{src_skip.id}" not in cells[5]
    assert "stale: never built successfully" in hung_row
    assert all(f"/builds/{b.id}" not in hung_row.split("<td")[5] for b in overlaps)


def test_a_skip_does_not_keep_an_old_success_fresh(tmp_path: Path, storage: Storage) -> None:
    config = make_project(tmp_path / "project", CONFIG.replace("max_age: 1h", "max_age: 1s", 1))
    jc = JobControl.from_config(config, storage)
    [success] = jc.build("src")
    assert success.finished is not None
    deadline = time.monotonic() + 10
    while (jc.storage.now() - success.finished).total_seconds() <= 1.2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (config.parent / "skip.flag").write_text("")
    [skipped] = jc.build("src")  # "nothing new", just now
    assert skipped.state is S.SKIPPED
    [src] = jc.status(["src"])
    assert src.last_success is not None and src.last_success.id == success.id
    assert src.stale is not None and src.stale.startswith("last success ")
    assert "src" in jc.stale_jobs()
    Cli(config, storage)("check", "--freshness", code=1)


def test_a_dependency_skipped_in_the_same_run_is_not_met(tmp_path: Path,
                                                         storage: Storage) -> None:
    config = make_project(tmp_path / "project", """\
jobs:
  - {id: nothing, function: jobfuncs.maybe_skip, args: [skip.flag], isolation: inline}
  - {id: after, function: jobfuncs.noop, isolation: inline, dependencies: [nothing]}
""")
    (config.parent / "skip.flag").write_text("")
    jc = JobControl.from_config(config, storage)
    result = Cli(config, storage)("build", "after", "--deps", code=3)
    assert "dependencies not met for 'after': nothing never built successfully" in result.output
    assert [b.state for b in jc.builds()] == [S.SKIPPED]


HUNG = """\
jobs:
  - id: hung
    function: jobfuncs.sleeper
    kwargs: {seconds: 60, marker: hung.pid}
    schedule: "* * * * * *"
    max_age: 1h
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def hung_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, HUNG)


def test_a_job_hung_under_cron_is_stale(hung_project: Project) -> None:
    # the case with real processes: a build hangs, cron's run-due records each
    # instant as an overlap skip, and monitoring must see the job stale
    project = hung_project
    hung = project.start("build", "hung")
    try:
        wait_for(project.config.parent / "hung.pid")
        deadline = time.monotonic() + 20
        while True:
            code, out, err = project.run("run-due", "--format", "json")
            assert code == 0, err
            if json.loads(out)["overlaps"]:
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.1)
        code, out, err = project.run("status", "--format", "json")
        assert code == 0, err
        [row] = json.loads(out)
        assert (row["last_state"], row["last_success"]) == ("skipped", None)
        assert row["stale"] == "never built successfully (max_age 1h)"
        code, out, err = project.run("check", "--freshness")
        assert code == 1, out + err
        assert "STALE hung: never built successfully (max_age 1h)" in out + err
    finally:
        hung.terminate()
        hung.communicate(timeout=30)
