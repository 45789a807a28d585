"""The ``jobcontrol`` command: a click group, one module per command family.

Commands parse input, call :class:`~jobcontrol.core.JobControl` and render; library errors
become one line on stderr with the error's exit code (``--debug`` shows the traceback).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from jobcontrol.cli.helpers import CliState, echo
from jobcontrol.errors import JobControlError, MissingDependencyError
from jobcontrol.version import __version__

#: the modules holding the commands, each with a ``COMMANDS`` list
COMMAND_MODULES = ("build", "status", "history", "runs", "logs", "jobs", "control", "pause",
                   "schedule", "backfill", "admin", "prune", "web", "worker")
#: which module holds which command: running one command imports only its module, so
#: ``jobcontrol --version`` and ``status`` skip the runner, YAML dumping and the rest
_COMMAND_MODULE = {
    "build": "build", "status": "status", "builds": "history", "show": "history",
    "logs": "logs", "jobs": "jobs", "job": "jobs", "graph": "jobs", "config": "jobs",
    "cancel": "control", "reap": "control", "requeue": "control", "pause": "pause",
    "resume": "pause",
    "run-due": "schedule", "scheduler": "schedule", "crontab": "schedule",
    "install": "admin", "check": "admin", "delete": "admin", "prune": "prune", "web": "web",
    "worker": "worker", "workers": "worker", "runs": "runs", "backfill": "backfill",
}


class JobControlGroup(click.Group):
    """A group that turns library errors into clean exits, and imports a command's module
    only when that command is asked for (``--help`` and completion import them all)."""

    def _load(self, module_name: str) -> None:
        module = importlib.import_module(f"jobcontrol.cli.{module_name}")
        for command in module.COMMANDS:
            if command.name not in self.commands:
                self.add_command(command)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            module_name = _COMMAND_MODULE.get(cmd_name)
            for name in [module_name] if module_name else COMMAND_MODULES:
                self._load(name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for name in COMMAND_MODULES:
            self._load(name)
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (JobControlError, ImportError) as error:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            # an ImportError here is an extra missing or broken: one line, no traceback
            said = MissingDependencyError(error) if isinstance(error, ImportError) else error
            echo(f"Error: {said}", err=True)
            ctx.exit(said.exit_code)


@click.group(cls=JobControlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config", metavar="FILE", envvar="JOBCONTROL_CONFIG",
              help="Job definitions (default: $JOBCONTROL_CONFIG, then ./jobcontrol.yaml).")
@click.option("--storage", metavar="URL",
              help="Storage URL, e.g. sqlite:///jobs.db or memory:// "
                   "(default: $JOBCONTROL_STORAGE, then the config's storage:).")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(__version__, "-V", "--version", prog_name="jobcontrol")
@click.pass_context
def main(ctx: click.Context, config: str | None, storage: str | None, debug: bool) -> None:
    """Run Python jobs defined in YAML, and remember every build."""
    # a program embedding the CLI (the tests do) may hand in an open Storage as obj
    state = CliState(config, storage or ctx.obj, debug)
    ctx.obj = state
    ctx.call_on_close(state.close)
