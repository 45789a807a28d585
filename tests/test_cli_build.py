"""``jobcontrol build`` and the commands that inspect builds, on every storage backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobcontrol.storage import Storage
from tests.support import Cli, isolation_specific, make_project

CONFIG = """\
jobs:
  - id: chatty
    function: jobfuncs.chatty
    kwargs: {name: tests}
  - id: fails
    function: jobfuncs:fails
  - id: a
    function: jobfuncs.make
    args: [a]
  - id: b
    function: jobfuncs.make
    dependencies: [a]
    kwargs: {tag: b, value: !retval a}
  - id: c
    function: jobfuncs.make
    dependencies: [b]
    kwargs: {tag: c, value: {"from b": !retval b}}
  - id: many
    function: jobfuncs.many_lines
    kwargs: {count: 20000}
  - id: odd
    function: jobfuncs.not_json
"""


@pytest.fixture
def cli(tmp_path: Path, storage: Storage) -> Cli:
    return Cli(make_project(tmp_path, CONFIG), storage)


def show(cli: Cli, build_id: int) -> dict:
    return json.loads(cli("show", str(build_id), "--format", "json").output)


def status(cli: Cli) -> dict[str, dict]:
    return {row["job"]: row for row in json.loads(cli("status", "--format", "json").output)}


def built(cli: Cli, *args: str, code: int = 0) -> list[dict]:
    return json.loads(cli("build", *args, "--format", "json", code=code).output)


def test_build_records_return_value_logs_and_printed_lines(cli: Cli) -> None:
    result = cli("build", "chatty")
    assert "build #1 chatty: started" in result.output
    assert "hello tests" in result.output
    assert "build #1 chatty: success" in result.output
    detail = show(cli, 1)
    assert detail["state"] == "success"
    assert detail["retval"] == {"greeting": "hello tests", "when": "2026-01-02", "n": 3}
    assert detail["retval_kind"] == "json"
    assert detail["exception"] is None
    assert detail["duration"] >= 0
    assert {p["message"] for p in detail["progress"]} == {"half way", "done"}
    lines = [json.loads(line) for line in cli("logs", "1", "--format", "json").output.splitlines()]
    levels = {(r["level"], r["logger"], r["message"]) for r in lines}
    assert ("DEBUG", "jobfuncs", "debug detail") in levels
    assert ("INFO", "jobfuncs", "hello tests") in levels
    assert ("WARNING", "jobfuncs", "careful") in levels
    assert ("INFO", "stdout", "printed line") in levels
    assert ("WARNING", "stderr", "to stderr") in levels
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1))
    warnings = cli("logs", "1", "--level", "warning").output
    assert "careful" in warnings and "hello tests" not in warnings


def test_show_text_has_value_progress_and_consumed(cli: Cli) -> None:
    cli("build", "c", "--deps")
    text = cli("show", "3").output
    assert "consumed    b #2" in text
    assert '"tag": "c"' in text
    chatty = cli("build", "chatty")
    assert chatty.exit_code == 0
    text = cli("show", "4").output
    assert "progress:" in text and "phase: 3/4 75%" in text and "one: 1/2 50%  half way" in text


def test_failing_job_exit_1_with_exception_and_traceback(cli: Cli) -> None:
    [build] = built(cli, "fails", code=1)
    assert build["state"] == "failed"
    assert build["reason"] == "ValueError: bad row 12"
    detail = show(cli, build["id"])
    assert detail["exception"]["type"] == "ValueError"
    assert detail["exception"]["message"] == "bad row 12"
    traceback = detail["exception"]["traceback"]
    assert "jobfuncs.py" in traceback and "in fails" in traceback
    assert "orchestrator" not in traceback and "runner.py" not in traceback
    text = cli("show", str(build["id"])).output
    assert "exception: ValueError: bad row 12" in text


def test_chain_needs_deps_then_builds_in_order(cli: Cli) -> None:
    result = cli("build", "c", code=3)
    assert "dependencies not met for 'c': b never built successfully" in result.output
    assert json.loads(cli("builds", "--format", "json").output) == []

    builds = built(cli, "c", "--deps")
    assert [(b["job"], b["state"]) for b in builds] == [
        ("a", "success"), ("b", "success"), ("c", "success")]
    b_id, c_id = builds[1]["id"], builds[2]["id"]
    c_detail = show(cli, c_id)
    assert c_detail["dependency_builds"] == {"b": b_id}
    assert c_detail["retval"]["got"] == {"from b": show(cli, b_id)["retval"]}
    assert c_detail["retval"]["got"]["from b"]["got"]["tag"] == "a"
    assert not any(row["outdated"] for job, row in status(cli).items() if job in "abc")


def test_rebuilding_upstream_makes_downstream_outdated(cli: Cli) -> None:
    built(cli, "c", "--deps")
    [a2] = built(cli, "a")
    rows = status(cli)
    assert rows["a"]["outdated"] is False
    assert rows["b"]["outdated"] is True
    assert any("dependency a has a newer build" in r for r in rows["b"]["outdated_reasons"])
    assert rows["c"]["outdated_reasons"] == ["dependency b is outdated"]
    why = cli("status", "--why").output
    assert f"dependency a has a newer build ({a2['id']}; this job used build 1)" in why

    builds = built(cli, "b", "--depending")
    assert [b["job"] for b in builds] == ["b", "c"]
    assert not any(row["outdated"] for job, row in status(cli).items() if job in "abc")
    assert show(cli, builds[0]["id"])["dependency_builds"] == {"a": a2["id"]}


def test_if_outdated_and_dry_run(cli: Cli) -> None:
    plan = json.loads(cli("build", "c", "--deps", "--dry-run", "--format", "json").output)
    assert [(p["job"], p["build"]) for p in plan] == [("a", True), ("b", True), ("c", True)]
    assert plan[0]["reason"] == "never built successfully"
    assert json.loads(cli("builds", "--format", "json").output) == []
    built(cli, "c", "--deps")
    assert built(cli, "c", "--if-outdated") == []
    assert "c: not built (up to date)" in cli("build", "c", "--if-outdated").output
    text = cli("build", "c", "--deps", "--dry-run").output
    assert "skip  a (upstream): up to date" in text
    assert "build c (target): requested" in text
    built(cli, "a")
    plan = json.loads(cli("build", "c", "--deps", "--if-outdated", "--dry-run",
                          "--format", "json").output)
    assert [(p["job"], p["build"]) for p in plan] == [("a", False), ("b", True), ("c", True)]


def test_failure_stops_downstream(tmp_path: Path, storage: Storage) -> None:
    cli = Cli(make_project(tmp_path, """\
        jobs:
          - {id: bad, function: jobfuncs.fails}
          - {id: after_bad, function: jobfuncs.make, args: [x], dependencies: [bad]}
          - {id: other, function: jobfuncs.make, args: [y]}
          - {id: last, function: jobfuncs.make, args: [z], dependencies: [after_bad, other]}
    """), storage)
    result = cli("build", "last", "--deps", code=1)
    assert "after_bad: not built (dependency bad failed)" in result.output
    assert [b["job"] for b in json.loads(cli("builds", "--format", "json").output)] == ["bad"]
    result = cli("build", "last", "--deps", "--keep-going", code=1)
    jobs = [b["job"] for b in json.loads(cli("builds", "--format", "json").output)]
    assert sorted(jobs) == ["bad", "bad", "other"]
    assert "last: not built (dependency after_bad failed)" in result.output


@isolation_specific("process", "pool", why="inline builds run one at a time, in the runner: "
                    "-j runs forked and pooled builds at once (docs/explanation/isolation.rst)")
def test_parallel_independent_builds(tmp_path: Path, storage: Storage) -> None:
    cli = Cli(make_project(tmp_path, """\
        jobs:
          - {id: s1, function: jobfuncs.sleeper, kwargs: {seconds: 0.6}}
          - {id: s2, function: jobfuncs.sleeper, kwargs: {seconds: 0.6}}
          - {id: s3, function: jobfuncs.sleeper, kwargs: {seconds: 0.6}}
          - {id: all, function: jobfuncs.make, args: [all], dependencies: [s1, s2, s3]}
    """), storage)
    builds = built(cli, "all", "--deps", "-j", "3")
    assert [b["state"] for b in builds] == ["success"] * 4
    sleepers = [show(cli, b["id"]) for b in builds[:3]]
    # all three ran at the same time: each started before any other finished
    latest_start = max(s["started"] for s in sleepers)
    earliest_end = min(s["finished"] for s in sleepers)
    assert latest_start < earliest_end
    assert show(cli, builds[3]["id"])["started"] >= max(s["finished"] for s in sleepers)


def test_skip_leaves_dependents_up_to_date(tmp_path: Path, storage: Storage) -> None:
    cli = Cli(make_project(tmp_path, """\
        jobs:
          - {id: a, function: jobfuncs.maybe_skip, kwargs: {flag: skip-a}}
          - {id: b, function: jobfuncs.make, kwargs: {tag: b, value: !retval a},
             dependencies: [a]}
          - {id: c, function: jobfuncs.make, kwargs: {tag: c}, dependencies: [b]}
    """), storage)
    built(cli, "c", "--deps")
    (tmp_path / "skip-a").write_text("")
    [skipped] = built(cli, "a")
    assert skipped["state"] == "skipped"
    assert skipped["reason"] == "nothing new"
    rows = status(cli)
    assert rows["a"]["last_state"] == "skipped"
    assert [rows[j]["outdated"] for j in "abc"] == [False, False, False]
    # --depending after a skip rebuilds nothing downstream
    builds = built(cli, "a", "--depending")
    assert [b["job"] for b in builds] == ["a"]


def test_editing_kwargs_makes_job_outdated(tmp_path: Path, storage: Storage) -> None:
    config = make_project(tmp_path, CONFIG)
    cli = Cli(config, storage)
    built(cli, "c", "--deps")
    config.write_text(CONFIG.replace("kwargs: {tag: b, value: !retval a}",
                                     "kwargs: {tag: b2, value: !retval a}"))
    rows = status(cli)
    assert rows["b"]["outdated_reasons"] == ["definition changed since build 2"]
    assert rows["c"]["outdated_reasons"] == ["dependency b is outdated"]
    assert rows["a"]["outdated"] is False


def test_20000_log_lines_all_stored_in_order(cli: Cli) -> None:
    built(cli, "many")
    lines = cli("logs", "1", "--format", "json").output.splitlines()
    assert len(lines) == 20000
    records = [json.loads(line) for line in lines]
    assert [r["message"] for r in records] == [f"line {i}" for i in range(20000)]
    assert [r["seq"] for r in records] == list(range(1, 20001))


def test_non_json_return_value_is_kept_as_repr(cli: Cli) -> None:
    [build] = built(cli, "odd")
    assert build["state"] == "success"
    detail = show(cli, build["id"])
    assert detail["retval_kind"] == "repr"
    assert detail["retval"].startswith("<object object at ")
    assert "(not JSON: kept as its repr)" in cli("show", str(build["id"])).output


def test_builds_filters_and_history(cli: Cli) -> None:
    built(cli, "a")
    built(cli, "fails", code=1)
    built(cli, "a")
    rows = json.loads(cli("builds", "--format", "json").output)
    assert [r["id"] for r in rows] == [3, 2, 1]
    assert set(rows[0]) >= {"id", "job", "state", "reason", "created", "started", "finished",
                            "duration"}
    failed = json.loads(cli("builds", "--state", "failed", "--format", "json").output)
    assert [r["id"] for r in failed] == [2]
    only_a = json.loads(cli("builds", "a", "--limit", "1", "--format", "json").output)
    assert [r["id"] for r in only_a] == [3]
    older = json.loads(cli("builds", "--before", "3", "--format", "json").output)
    assert [r["id"] for r in older] == [2, 1]
    table = cli("builds").output
    assert "ValueError: bad row 12" in table
    assert cli("builds", "nope", code=2).output.startswith("Error: unknown job 'nope'")


def test_unknown_build_and_job_are_clean_errors(cli: Cli) -> None:
    assert cli("show", "99", code=2).output == "Error: build 99 not found\n"
    assert cli("logs", "99", code=2).output == "Error: build 99 not found\n"
    result = cli("build", "chaty", code=2)
    assert result.output == "Error: unknown job 'chaty'. Did you mean 'chatty'?\n"
    assert "Invalid value" in cli("logs", "1", "--level", "LOUD", code=2).output


def test_delete_runs_cleanup_function(tmp_path: Path, storage: Storage) -> None:
    cli = Cli(make_project(tmp_path, """\
        jobs:
          - {id: a, function: jobfuncs.make, args: [a], cleanup_function: jobfuncs.record_cleanup}
          - {id: b, function: jobfuncs.make, args: [b], cleanup_function: jobfuncs.failing_cleanup}
    """), storage)
    built(cli, "a")
    built(cli, "b")
    assert cli("delete", "1").output == "deleted build #1 (a, success)\n"
    assert (tmp_path / "cleaned-1").read_text() == "a"
    assert cli("show", "1", code=2).output == "Error: build 1 not found\n"
    assert cli("logs", "1", code=2).exit_code == 2
    result = cli("delete", "2", code=1)  # a cleanup failed: 1, as prune
    assert "cleanup of build 2 (jobfuncs.failing_cleanup) failed: RuntimeError: cannot clean" \
        in result.output
    assert show(cli, 2)["state"] == "success"
