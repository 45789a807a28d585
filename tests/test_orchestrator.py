"""The orchestrator's own guard rails (what a run does is tested through the CLI and API)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobcontrol.config import load_config
from jobcontrol.execution.orchestrator import BuildRun
from jobcontrol.rules.plan import Role, Step
from jobcontrol.storage import open_storage
from tests.support import make_project


def test_a_plan_that_cannot_progress_names_its_stuck_steps(tmp_path: Path) -> None:
    config = load_config(str(make_project(tmp_path, """
        jobs:
          - {id: a, function: jobfuncs.make}
          - {id: b, function: jobfuncs.make}
    """)))
    storage = open_storage("memory://")
    run = BuildRun(config, storage, {})
    run.deps = {"a": ["b"], "b": ["a"]}  # a cycle no config can hold: nothing can start
    with pytest.raises(RuntimeError, match=r"plan cannot progress: \['a', 'b'\]"):
        run.run([Step("a", Role.TARGET), Step("b", Role.TARGET)])
    storage.close()
