"""``jobcontrol logs --follow`` on every storage backend: it prints lines as they are
committed and stops at the build's outcome."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from jobcontrol.models import BuildState, LogRecord
from jobcontrol.storage import Storage
from jobcontrol.timeutil import utcnow
from tests.support import Cli, make_project

CONFIG = """\
jobs:
  - id: job
    function: jobfuncs.make
    args: [x]
"""


def test_follow_prints_lines_until_the_build_ends(tmp_path: Path, storage: Storage) -> None:
    cli = Cli(make_project(tmp_path, CONFIG), storage)
    build = storage.claim_build("job", concurrency=1, definition={}, definition_hash="",
                                dependency_builds={}, host="h", pid=1)

    def write(message: str, level: int = logging.INFO) -> None:
        storage.append_logs(build.id, [LogRecord(utcnow(), level, "job", message)])

    def writer() -> None:
        write("first")
        for n in range(3):
            time.sleep(0.1)
            write(f"quiet {n}", logging.DEBUG)
            write(f"line {n}")
        time.sleep(0.1)
        storage.finish_build(build.id, BuildState.SUCCESS)

    thread = threading.Thread(target=writer)
    thread.start()
    started = time.monotonic()
    try:
        result = cli("logs", str(build.id), "--follow", "--level", "info",
                     "--interval", "0.05")
    finally:
        thread.join()
    assert time.monotonic() - started < 5
    lines = result.output.splitlines()
    assert [line.split()[-1] for line in lines] == ["first", "0", "1", "2"]
    assert not any("quiet" in line for line in lines)
