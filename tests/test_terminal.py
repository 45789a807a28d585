"""Job text cannot drive the terminal: escape sequences a job logs, prints, reports as
progress, raises or returns (and a config's titles) are shown visibly by every text command,
on a real terminal too, while ``--format json`` keeps the exact text."""

from __future__ import annotations

import errno
import json
import logging
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.jobfuncs import TERMINAL_ATTACK
from tests.processes import ROOT, Project

CONFIG = """\
jobs:
  - id: attack
    title: "evil \\e]0;pwned title\\a \\e[2J"
    function: jobfuncs.terminal_attack
  - id: attack_fails
    function: jobfuncs.terminal_attack
    kwargs: {fail: true}
  - id: raw_repr
    function: jobfuncs.returns_raw_repr
  - id: consumer
    function: jobfuncs.noop
    kwargs: {tag: !retval raw_repr}
    dependencies: [raw_repr]
"""

#: what the CLI itself writes on a terminal: colours, and wiping the live progress line
OWN_SEQUENCES = re.compile(r"\x1b\[[0-9;]*m|\r\x1b\[2K")
#: what must never come from a job: ESC, BEL, CR, C1 controls, bidi overrides
RAW = re.compile("[\x07\x0d\x1b\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def assert_inert(text: str) -> None:
    """No control sequence in ``text`` but the CLI's own styling; the attack shows."""
    raw = RAW.findall(OWN_SEQUENCES.sub("", text))
    assert not raw, f"raw control characters reached the terminal: {raw!r} in {text!r}"


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    return Project.on(request, tmp_path, CONFIG)


def run_on_pty(project: Project, *args: str) -> tuple[int, str]:
    """``jobcontrol ARGS`` with stdout and stderr on a pseudo-terminal, as in a shell:
    the live renderer draws its progress line. Returns the exit code and all it wrote."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    process = subprocess.Popen([sys.executable, "-m", "jobcontrol", *project.args(*args)],
                               stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                               env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "2000"})
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError as error:  # EIO: every writer has closed the terminal
            assert error.errno == errno.EIO
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    # the terminal writes each newline as CR LF (onlcr): only a CR of the program's counts
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8").replace("\r\n", "\n")


def test_job_text_cannot_drive_the_terminal(project: Project) -> None:
    code, out = run_on_pty(project, "build", "attack")
    assert code == 0, out
    assert "\x1b[" in out  # a real terminal: the CLI's own colours are there
    assert_inert(out)
    assert "log clip\\x1b]52;c;cHduZWQ=\\x07 title\\x1b]0;pwned\\x07" in out  # shown visibly
    assert "\\x9b31m bidi\\u202eevil\\u202c cr\\rover" in out
    assert "progress clip\\x1b]52;" in out  # the live progress line
    code, out = run_on_pty(project, "build", "attack_fails")
    assert code == 1, out
    assert_inert(out)
    assert "raise clip\\x1b]52;" in out

    texts = []
    for args in (["logs", "1"], ["logs", "2"], ["show", "1"], ["show", "2"], ["builds"],
                 ["jobs"], ["job", "attack"], ["status"]):
        code, out, err = project.run(*args)
        assert code == 0, err
        assert_inert(out + err)
        texts.append(out)
    logs, _, shown, shown_failed, builds, jobs, job, _ = texts
    assert "print clip\\x1b]52;" in logs and "log clip\\x1b]52;" in logs
    assert "clip\\x1b]52;c;cHduZWQ=\\x07" in shown  # the return value
    assert "progress clip\\x1b]52;" in shown
    assert "raise clip\\x1b]52;" in shown_failed and "Traceback" in shown_failed
    assert "evil \\x1b]0;pwned title\\x07 \\x1b[2J" in jobs
    assert "evil \\x1b]0;pwned title" in job and "\\x1b]0;docstring\\x07" in job
    assert "attack_fails" in builds


def test_json_output_keeps_the_exact_text(project: Project) -> None:
    for job in ("attack", "attack_fails"):
        process = subprocess.run(
            [sys.executable, "-m", "jobcontrol", *project.args("build", job, "--format",
                                                                 "json")],
            capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
        assert RAW.findall(process.stdout.decode()) == []  # JSON-escaped, every one
    code, out, err = project.run("logs", "1", "--format", "json")
    assert code == 0, err
    assert not RAW.findall(out)
    messages = [json.loads(line)["message"] for line in out.splitlines()]
    assert f"log {TERMINAL_ATTACK}" in messages
    assert f"print {TERMINAL_ATTACK}" in messages
    for args in (["show", "1"], ["show", "2"], ["builds"], ["jobs"], ["job", "attack"]):
        code, out, err = project.run(*args, "--format", "json")
        assert code == 0, err
        assert not RAW.findall(out)
        data = json.loads(out)
        if args == ["show", "1"]:
            assert data["retval"] == {"text": TERMINAL_ATTACK}
            assert data["progress"][0]["message"] == f"progress {TERMINAL_ATTACK}"
        if args == ["show", "2"]:
            assert data["exception"]["message"] == f"raise {TERMINAL_ATTACK}"
        if args == ["jobs"]:
            assert data[0]["title"] == "evil \x1b]0;pwned title\x07 \x1b[2J"


def test_a_workers_log_line_shows_a_failure_reason_visibly(caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    from jobcontrol.execution.remote import LoggingObserver
    from jobcontrol.models import Build, BuildState

    caplog.set_level(logging.INFO, logger="jobcontrol")
    reason = f"RuntimeError: raise {TERMINAL_ATTACK}"
    LoggingObserver().build_finished(Build(7, "attack_fails", BuildState.FAILED, reason))
    (line,) = [record.getMessage() for record in caplog.records]
    assert not RAW.findall(line) and "\\x1b]52;" in line


def test_an_error_quoting_job_text_is_shown_visibly(project: Project) -> None:
    code, out, err = project.run("build", "raw_repr")
    assert code == 0, err
    code, out, err = project.run("build", "consumer")  # its !retval cannot be loaded
    assert code != 0, err
    assert "RawRepr(clip\\x1b]52;" in err and err.startswith("Error: !retval raw_repr")
    assert_inert(out + err)


def test_the_web_ui_shows_job_text_with_the_same_cleaner(project: Project) -> None:
    from jobcontrol.core import JobControl
    from jobcontrol.web import create_app

    for job, expected in (("attack", 0), ("attack_fails", 1)):
        code, _, err = project.run("build", job)
        assert code == expected, err
    jc = JobControl.from_config(project.config, project.storage_url)
    try:
        client = create_app(jc).test_client()
        for url in ("/", "/jobs/attack", "/builds/1", "/builds/2"):
            page = client.get(url).get_data(as_text=True)
            assert not RAW.findall(page), url  # bidi overrides and C1 too
        assert "clip\\x1b]52;c;cHduZWQ=\\x07" in page and "bidi\\u202eevil" in page
    finally:
        jc.close()
