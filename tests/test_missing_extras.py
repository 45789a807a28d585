"""A library an extra installs, missing or broken, is one line naming the module and the extra
to install, with exit 2, and no traceback; nothing is queued. (That each extra installs
what it needs in a fresh virtualenv is the extras step of ``.ci/run``.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobcontrol.errors import ExitCode, MissingDependencyError
from tests.processes import ROOT
from tests.support import make_project

CONFIG = """\
executor: {type: celery, broker: "redis://127.0.0.1:1/0", queue: extras}
jobs:
  - {id: a, function: jobfuncs.noop}
"""


def jobcontrol_without(module: str, config: Path, *args: str) -> tuple[int, str, str]:
    """``jobcontrol`` in a process where ``import module`` fails, as in a virtualenv that
    lacks it."""
    program = (f"import sys; sys.modules[{module!r}] = None; "
               f"from jobcontrol.cli import main; main()")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBCONTROL_")}
    process = subprocess.run(
        [sys.executable, "-c", program, "-c", str(config), *args], capture_output=True,
        text=True, env={**env, "PYTHONPATH": str(ROOT)}, timeout=60, cwd=config.parent)
    return process.returncode, process.stdout, process.stderr


def test_kombus_redis_transport_without_packaging(tmp_path: Path) -> None:
    pytest.importorskip("celery", reason="the Celery tests need pip install 'jobcontrol[celery]'")
    config = make_project(tmp_path, CONFIG)
    code, out, err = jobcontrol_without("packaging", config, "build", "a", "--async")
    assert (code, out) == (ExitCode.USAGE, ""), err
    assert err.startswith("Error: a library jobcontrol needs cannot be imported: module "
                          "'packaging")
    assert err.endswith(" (pip install 'jobcontrol[celery]')\n")
    assert len(err.splitlines()) == 1
    code, out, err = jobcontrol_without("packaging", config, "builds")
    assert (code, out) == (0, "(none)\n"), err  # nothing was queued


def test_a_broken_library_under_the_web_command(tmp_path: Path) -> None:
    pytest.importorskip("flask", reason="needs the web extra")
    config = make_project(tmp_path, CONFIG.replace("executor:", "#"))
    # a library Flask itself imports: the command's own check finds Flask, then it breaks
    code, out, err = jobcontrol_without("werkzeug.serving", config, "web", "--port", "0")
    assert code == ExitCode.USAGE, out + err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "werkzeug" in err and "jobcontrol[web]" in err


def test_the_extra_is_the_innermost_jobcontrol_module_on_the_traceback() -> None:
    def from_celery_glue() -> None:
        raise ModuleNotFoundError("No module named 'amqp'", name="amqp")

    # a frame of the Celery glue on the way up, as when kombu imports a transport for it
    try:
        exec(compile("f()", "<celery glue>", "exec"),
             {"__name__": "jobcontrol.execution.celery", "f": from_celery_glue})
    except ImportError as error:
        said = MissingDependencyError(error)
    assert said.extra == "celery"
    assert str(said) == ("a library jobcontrol needs cannot be imported: module 'amqp' is "
                         "missing (pip install 'jobcontrol[celery]')")
    assert said.exit_code == ExitCode.USAGE
    plain = MissingDependencyError(ImportError("cannot import name 'x' from 'y'"))
    assert plain.extra is None
    assert str(plain).endswith("cannot import name 'x' from 'y' (reinstall jobcontrol with "
                               "the extras you use)")
