"""Two ``jobcontrol build`` runners with the same hostname in separate PID namespaces (two
containers with the host's network sharing a storage): each judges the other's build by its
heartbeat, never by a pid that means another process where it looks. The runner here is
really started under ``unshare --pid`` (as root), with a pid no process has here."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from jobcontrol import BuildState, JobControl
from tests.processes import UNSHARE, alive, needs_unshare, pythonpath, run, wait_for
from tests.support import make_project

#: the runner's pid in its namespace (the kernel gives the next one after ``ns_last_pid``)
THEIR_PID = 4_000_001

CONFIG = """\
jobs:
  - {id: hold, function: jobfuncs.waits_for, kwargs: {started: started.mark, go: go.mark}}
"""


@needs_unshare
def test_a_build_run_in_another_pid_namespace_is_not_reaped_here(tmp_path: Path) -> None:
    config = make_project(tmp_path, CONFIG)
    storage = f"sqlite:///{tmp_path / 'jc.db'}"
    command = shlex.join([sys.executable, "-m", "jobcontrol", "--config", str(config),
                          "--storage", storage, "build", "hold"])
    runner = subprocess.Popen(
        [*UNSHARE, "sh", "-c",
         f"echo {THEIR_PID - 1} > /proc/sys/kernel/ns_last_pid && {command}"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath()}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(tmp_path / "started.mark")
        code, out, err = run("--config", str(config), "--storage", storage,
                             "reap", "--format", "json")
        assert (code, json.loads(out)) == (0, []), err
        with JobControl.from_config(config, storage=storage) as jc:
            [build] = jc.storage.list_builds()
            assert build.state is BuildState.RUNNING
            assert build.pid == THEIR_PID and not alive(THEIR_PID)  # a pid of nothing here
        (tmp_path / "go.mark").write_text("go")
        out, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0, err
    with JobControl.from_config(config, storage=storage) as jc:
        [build] = jc.storage.list_builds()
    assert build.state is BuildState.SUCCESS, build.reason
