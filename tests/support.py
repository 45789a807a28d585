"""Helpers for the CLI and API tests: a project folder, a CLI runner that shows failures."""

from __future__ import annotations

import shutil
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jobcontrol.cli import main

HERE = Path(__file__).parent
#: the isolation of a job whose config says none, in this test run: the code's default, or
#: ``$JOBCONTROL_TEST_DEFAULT_ISOLATION`` (set here by tests/conftest.py, which reads it)
DEFAULT_ISOLATION = "pool"


def isolation_specific(*isolations: str, why: str) -> pytest.MarkDecorator:
    """For a test whose jobs say no isolation and whose expectation holds for these
    isolations only: skipped in a run that switched the default to another, ``why`` naming
    that isolation's documented behaviour."""
    return pytest.mark.skipif(
        DEFAULT_ISOLATION not in isolations,
        reason=f"default isolation {DEFAULT_ISOLATION}: {why}")


def make_project(folder: Path, yaml_text: str, name: str = "jobs.yaml",
                 modules: tuple[str, ...] = ()) -> Path:
    """Write a config and the test job modules beside it (``jobfuncs``, and ``modules``
    of tests/, e.g. ``("runjobs",)``); return the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    for module in ("jobfuncs", *modules):
        shutil.copy(HERE / f"{module}.py", folder / f"{module}.py")
        # each test has its own copy: import it afresh from this test's folder
        sys.modules.pop(module, None)
    path = folder / name
    path.write_text(textwrap.dedent(yaml_text))
    return path


class Cli:
    """Runs ``jobcontrol -c CONFIG ...`` in-process, against one storage."""

    def __init__(self, config: Path, storage: Any = None) -> None:
        self.config = config
        self.storage = storage
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int | None = 0, input: str | None = None) -> Result:
        result = self.runner.invoke(main, ["-c", str(self.config), *args], obj=self.storage,
                                    input=input, catch_exceptions=True)
        if code is not None and result.exit_code != code:
            details = result.output
            if result.exc_info and not isinstance(result.exception, SystemExit):
                details += "".join(traceback.format_exception(*result.exc_info))
            raise AssertionError(
                f"jobcontrol {' '.join(args)} exited {result.exit_code}, expected {code}:\n"
                f"{details}"
            )
        return result
