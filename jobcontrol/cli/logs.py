"""``jobcontrol logs``: a build's log, optionally followed until the build ends."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from jobcontrol.cli.helpers import echo, pass_jc
from jobcontrol.present import log_json, log_line
from jobcontrol.text import json_text

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
#: seconds ``--follow`` waits for news before looking at the build again regardless
FOLLOW_WAIT = 5.0


class LevelType(click.ParamType):
    """A logging level by name (any case) or number."""

    name = "level"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().upper()
        if text.isdigit():
            return int(text)
        if text in LEVELS or text == "WARN":
            return int(logging.getLevelName("WARNING" if text == "WARN" else text))
        self.fail(f"{value!r} is not a level: use one of {', '.join(LEVELS)} or a number",
                  param, ctx)


@click.command()
@click.argument("build_id", metavar="BUILD", type=click.IntRange(1))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until it ends.")
@click.option("--level", "-l", type=LevelType(), default="DEBUG",
              help="Only records at this level or above (DEBUG, INFO, WARNING, ERROR).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text, or JSON Lines (one record a line).")
@click.option("--interval", type=click.FloatRange(0.05), default=0.5, hidden=True)
@pass_jc
def logs(jc: JobControl, build_id: int, follow: bool, level: int, fmt: str,
         interval: float) -> None:
    """Print a build's log."""
    jc.get_build(build_id)
    after = 0
    while True:
        printed = 0
        # a page at a time: a log of a million lines is printed in bounded memory
        for record in jc.iter_logs(build_id, min_level=level, after_seq=after):
            if fmt == "json":
                click.echo(json_text(log_json(record)))
            else:
                echo(log_line(record))
            after = record.seq
            printed += 1
        if not follow:
            return
        if not printed:
            if jc.get_build(build_id).state.finished:
                # one more read: lines flushed just before the outcome was written
                if not jc.logs(build_id, min_level=level, after_seq=after):
                    return
                continue
            # wakes when a line or the outcome is committed (PostgreSQL: LISTEN/NOTIFY;
            # other storages poll every `interval`); at worst it looks again after a while
            jc.wait_for_logs(build_id, after, FOLLOW_WAIT, min_level=level,
                             poll_interval=interval)


COMMANDS = [logs]
