"""The live progress line of ``jobcontrol build`` on a real terminal (a pty): it follows a
job that reports its progress in groups, the tree's root summing them."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.processes import ROOT, Project
from tests.support import make_project

CONFIG = """\
jobs:
  - id: download
    function: progressjobs.download
    kwargs: {files: 3, chunks: 4}
"""

JOBS = '''\
import time

from jobcontrol import progress


def download(files, chunks):
    """Every file announced at 0 of its chunks, then fetched chunk by chunk."""
    for n in range(files):
        progress(0, chunks, group=("download", f"file{n}.zip"))
    for n in range(files):
        for chunk in range(1, chunks + 1):
            time.sleep(0.2)  # the pace of the work (the live line redraws at most 10/s)
            progress(chunk, chunks, f"file{n}.zip", group=("download", f"file{n}.zip"))
'''

#: a redrawn live line: "#1 download [####----...] 42% message"
LIVE = re.compile(r"#\d+ download \[([#-]+)\]\s+(\d+)%(?: (\S+))?")


def run_on_terminal(args: list[str], cwd: Path, seconds: float = 30) -> str:
    """Run ``jobcontrol ARGS`` with a pty (120 columns) as its terminal; all it wrote."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "jobcontrol", *args], cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=slave, stderr=slave, env={**env, "PYTHONPATH": str(ROOT), "TERM": "xterm"},
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side closed, the command ended
                break
            if not data:
                break
            chunks.append(data)
        process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(params=["sqlite", "postgresql"])
def terminal_project(request: pytest.FixtureRequest, tmp_path: Path) -> Project:
    project = Project.on(request, tmp_path, CONFIG)
    (project.config.parent / "progressjobs.py").write_text(JOBS)
    return project


def test_live_line_follows_grouped_progress(terminal_project: Project) -> None:
    screen = run_on_terminal(terminal_project.args("build", "download"),
                             cwd=terminal_project.config.parent)
    # every redraw clears the line ("\r" ESC[2K) and writes it anew: the lines in turn
    drawn = [LIVE.search(part) for part in screen.split("\r\x1b[2K")]
    shown = [(int(m.group(2)), m.group(1).count("#"), m.group(3)) for m in drawn if m]
    percents = [percent for percent, _, _ in shown]
    assert len(set(percents)) >= 5, screen  # it moved, many times
    assert percents == sorted(percents)  # the root: the sum of every file's chunks
    assert percents[-1] >= 75, screen  # a redraw may be skipped (10 a second at most)
    assert shown[-1][1] >= 18  # the bar too: 18 of 24 cells at 9 chunks of 12
    assert {message for _, _, message in shown} >= {"file0.zip", "file2.zip"}
    assert "build #1 download: success" in screen


def test_pty_helper_sees_a_terminal(tmp_path: Path) -> None:
    """The helper really gives a terminal: ``build`` draws no live line into a pipe."""
    config = make_project(tmp_path, CONFIG)
    (tmp_path / "progressjobs.py").write_text(JOBS)
    piped = subprocess.run(
        [sys.executable, "-m", "jobcontrol", "-c", str(config), "build", "download"],
        capture_output=True, text=True, timeout=60,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")},
             "PYTHONPATH": str(ROOT)},
    )
    assert piped.returncode == 0, piped.stderr
    assert not LIVE.search(piped.stdout)
