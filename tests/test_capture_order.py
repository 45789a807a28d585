"""The order of a build's log when it comes through two pipes.

A forked or pooled build sends what it prints and logs as frames on one pipe, and what its
subprocesses write on its file descriptors 1 and 2 through others. When the runner finds
several of them ready at once (a loaded machine, a slow runner), the lines must still be
recorded in the order the job wrote them: here the runner is made slow, and the ready pipes
are handed to it in both orders.
"""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

import pytest

from jobcontrol import BuildState, JobControl
from jobcontrol.execution import local
from tests.support import make_project

real_select = select.select


class SlowSelect:
    """``select`` as a busy runner sees it: everything the job wrote is there at once, and
    the ready descriptors come in the order asked for."""

    def __init__(self, descending: bool) -> None:
        self.descending = descending

    def select(self, rlist: list[int], wlist: list[int], xlist: list[int],
               timeout: float | None = None) -> tuple[list[int], list[int], list[int]]:
        real_select([], [], [], 0.15)  # the job runs on meanwhile
        ready, writable, errors = real_select(rlist, wlist, xlist, timeout)
        return sorted(ready, reverse=self.descending), writable, errors


@pytest.mark.parametrize("isolation", ["process", "pool"])
@pytest.mark.parametrize("descending", [False, True])
def test_lines_are_recorded_in_the_order_the_job_wrote_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolation: str, descending: bool
) -> None:
    config = make_project(tmp_path, f"""\
defaults: {{isolation: {isolation}}}
jobs:
  - {{id: whoami, function: jobfuncs.whoami, kwargs: {{tag: w}}}}
""")
    fake: Any = SlowSelect(descending)
    monkeypatch.setattr(local, "select", fake)
    with JobControl.from_config(config, storage=f"sqlite:///{tmp_path / 'jc.db'}") as jc:
        [build] = jc.build(["whoami"])
        messages = [r.message for r in jc.storage.get_logs(build.id)]
    assert build.state is BuildState.SUCCESS, build.reason
    assert messages == ["printed w", "logged w", "from a subprocess w"]
