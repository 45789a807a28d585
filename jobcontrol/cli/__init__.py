"""The ``jobcontrol`` command: a click group, one module per command family.

Commands parse input, call :class:`~jobcontrol.core.JobControl` and render; library errors
become one line on stderr with the error's exit code (``--debug`` shows the traceback).
"""

from __future__ import annotations

from typing import Any

import click

from jobcontrol.cli.helpers import CliState
from jobcontrol.errors import JobControlError
from jobcontrol.version import __version__


class JobControlGroup(click.Group):
    """A group that turns library errors into clean exits."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except JobControlError as error:
            state = ctx.find_object(CliState)
            if state is not None and state.debug:
                raise
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)


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


def _register() -> None:
    from jobcontrol.cli import admin, build, control, history, jobs, logs, status, worker

    for module in (build, status, history, logs, jobs, control, admin, worker):
        for command in module.COMMANDS:
            main.add_command(command)


_register()
