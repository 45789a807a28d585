"""Shared CLI glue: the context object, error handling, output formats, completion."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from jobcontrol.text import json_text, visible

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

F = TypeVar("F", bound=Callable[..., Any])

#: ``--format`` for every command that prints a table
format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
    help="Output format.",
)


class CliState:
    """What the global options said; opens the config and storage on first use."""

    def __init__(self, config: str | None, storage: Any, debug: bool) -> None:
        self.config_path = config
        #: a URL, or a Storage object handed in by a program embedding the CLI (kept open)
        self.storage = storage
        self.debug = debug
        self._jc: JobControl | None = None

    @property
    def jc(self) -> JobControl:
        """The :class:`~jobcontrol.core.JobControl` (imported lazily: ``--help`` stays fast)."""
        if self._jc is None:
            from jobcontrol.core import JobControl

            self._jc = JobControl.from_config(self.config_path, self.storage)
        return self._jc

    def close(self) -> None:
        if self._jc is not None and isinstance(self.storage, (str, type(None))):
            self._jc.close()
        self._jc = None


def pass_jc(func: F) -> F:
    """Give the command the JobControl as its first argument."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = click.get_current_context().find_object(CliState)
        assert state is not None
        return func(state.jc, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Styled(str):
    """Text the CLI styled itself: the only text printed with its escape sequences."""


def styled(text: str, **style: Any) -> Styled:
    return Styled(click.style(text, **style))


def echo(text: str, err: bool = False, file: Any = None, **style: Any) -> None:
    """Print text whose control characters are shown, not acted on (job output, titles and
    errors quoting them cannot drive the terminal), then styled as asked."""
    if not isinstance(text, Styled):
        text = visible(text, multiline=True)
        if style:
            text = click.style(text, **style)
    click.echo(text, err=err, file=file)


def echo_json(value: Any) -> None:
    click.echo(json_text(value, indent=2))


def echo_table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> None:
    from tabulate import tabulate

    rows = [[cell if isinstance(cell, Styled) else visible(cell) for cell in row] for row in rows]
    if not rows:
        click.echo("(none)")
        return
    click.echo(tabulate(rows, headers=list(headers), tablefmt="simple", disable_numparse=True))


def complete_job_ids(ctx: click.Context, param: click.Parameter, incomplete: str
                     ) -> list[Any]:
    """Shell completion of job ids, read from the config the command line names."""
    from click.shell_completion import CompletionItem

    root = ctx.find_root()
    try:
        from jobcontrol.config import find_config_path, load_config

        config = load_config(find_config_path(root.params.get("config")))
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [CompletionItem(job_id, help=job.title)
            for job_id, job in config.jobs.items() if job_id.startswith(incomplete)]


def styled_state(state: str) -> Styled:
    """A build state coloured for a terminal (click strips colour when piped)."""
    colours = {"success": "green", "skipped": "cyan", "failed": "red", "cancelled": "yellow",
               "abandoned": "magenta", "running": "blue", "queued": "blue"}
    return styled(state, fg=colours.get(state))


#: ``--quiet`` for the commands cron runs (``build``, ``run-due``)
quiet_option = click.option(
    "--quiet", "-q", is_flag=True,
    help="Print nothing unless something failed (exit status not 0); then print all of "
         "it, as cronic does: cron mails only failures.",
)


@contextlib.contextmanager
def quiet_output(enabled: bool) -> Iterator[None]:
    """With ``enabled``, hold everything printed to stdout and stderr inside; at the end,
    drop it when the command succeeded (no exception, or an exit with status 0), else
    print it (stdout's, then stderr's), before the error goes on up.

    Held at the file descriptors too, as cronic holds a command's: an inline build's
    subprocesses (and C code) write to descriptors 1 and 2, not to ``sys.stdout``."""
    if not enabled:
        yield
        return
    real = sys.stdout, sys.stderr
    for stream in real:
        stream.flush()
    files = [tempfile.TemporaryFile() for _ in range(2)]
    saved = [_held_fd(fd, file) for fd, file in zip((1, 2), files, strict=True)]
    # text streams on the same open files (one offset each): what Python prints and what
    # the descriptors get stay in order
    held = [io.TextIOWrapper(os.fdopen(os.dup(file.fileno()), "wb"), encoding="utf-8",
                             errors="backslashreplace", write_through=True) for file in files]
    sys.stdout, sys.stderr = held
    failed = True
    try:
        yield
        failed = False
    except (SystemExit, click.exceptions.Exit) as exit_:
        code = exit_.code if isinstance(exit_, SystemExit) else exit_.exit_code
        failed = code not in (None, 0)
        raise
    finally:
        sys.stdout, sys.stderr = real
        for fd, before in zip((1, 2), saved, strict=True):
            if before is not None:
                os.dup2(before, fd)
                os.close(before)
        for stream, wrapper, file in zip(real, held, files, strict=True):
            wrapper.close()
            if failed:
                file.seek(0)
                stream.write(file.read().decode("utf-8", errors="replace"))
                stream.flush()
            file.close()


def _held_fd(fd: int, file: IO[bytes]) -> int | None:
    """Point descriptor ``fd`` at ``file``; a copy of what it was (None: it was closed)."""
    try:
        before = os.dup(fd)
    except OSError:
        return None
    os.dup2(file.fileno(), fd)
    return before
