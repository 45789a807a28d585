"""The root logger's level around inline builds: held at DEBUG for a run's inline builds
(set once, not per build: each ``setLevel`` clears every logger's cache), every build's
DEBUG records captured, the level given back when the run ends."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobcontrol import BuildState, JobControl
from tests.support import make_project


def test_a_run_of_inline_builds_sets_the_root_level_once(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_project(tmp_path, "defaults: {isolation: inline}\njobs:\n" + "".join(
        f"  - {{id: c{n}, function: jobfuncs.chatty}}\n" for n in range(10)))
    cleared: list[int] = []
    real_clear = logging.Manager._clear_cache

    def clear_cache(manager: logging.Manager) -> None:
        cleared.append(1)
        real_clear(manager)

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)  # as in a process that configured no logging
    try:
        monkeypatch.setattr(logging.Manager, "_clear_cache", clear_cache)
        with JobControl.from_config(config, storage="memory://") as jc:
            builds = jc.build([f"c{n}" for n in range(10)])
            assert [b.state for b in builds] == [BuildState.SUCCESS] * 10
            for build in builds:
                assert "debug detail" in [r.message for r in jc.logs(build.id)]
        assert root.level == logging.WARNING  # given back
        assert len(cleared) == 2  # down and back up, once each for the run
    finally:
        root.setLevel(before)


def test_a_build_after_one_that_raised_the_root_level_captures_debug(tmp_path: Path) -> None:
    config = make_project(tmp_path, """\
        defaults: {isolation: inline}
        jobs:
          - {id: quiet, function: jobfuncs.quiets_root, kwargs: {level: ERROR}}
          - {id: chatty, function: jobfuncs.chatty}
        """)
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.INFO)
    try:
        with JobControl.from_config(config, storage="memory://") as jc:
            quiet, chatty = jc.build(["quiet", "chatty"])
            assert (quiet.state, chatty.state) == (BuildState.SUCCESS, BuildState.SUCCESS)
            assert [r.message for r in jc.logs(chatty.id) if r.level == logging.DEBUG] == [
                "debug detail"]
            assert root.level == logging.INFO  # the run's end gave back the level before it
            [again] = jc.build("chatty")  # a run of one: held for it too
            assert "debug detail" in [r.message for r in jc.logs(again.id)]
        assert root.level == logging.INFO
    finally:
        root.setLevel(before)
