"""``jobcontrol worker``: a Celery worker that runs queued builds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import echo_json, echo_table, format_option, pass_jc
from jobcontrol.errors import BrokerError
from jobcontrol.models import BuildState
from jobcontrol.present import worker_json
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Builds this worker runs at once (its pool processes).")
@click.option("--queue", "-Q", "queues", multiple=True, metavar="Q",
              help="Take builds from this queue (repeat for several; default: the "
                   "executor's queue).")
@click.option("--single-host", is_flag=True,
              help="Allow a SQLite storage: every worker and build command runs on this "
                   "machine.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED, metavar="[CELERY ARGS]...")
@pass_jc
def worker(jc: JobControl, concurrency: int, queues: tuple[str, ...], single_host: bool,
           celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker for the builds queued by `build --async`: it claims each build
    once, runs it in a child process as `build` does, and records it in the storage.

    Needs `executor: {type: celery, broker: ...}` in the config and a storage the other
    machines share (PostgreSQL). Arguments after the options go to `celery worker`.
    """
    if not jc.config.executor.remote:
        raise BrokerError(f"the worker needs the Celery executor: add `executor: {{type: "
                          f"celery, broker: redis://HOST:6379/0}}` to {jc.config.path}")
    from jobcontrol.execution.celery import check_shared_storage, run_worker

    check_shared_storage(jc.storage.url, getattr(jc.storage, "label", jc.storage.url),
                         single_host)
    jc.install()
    jc.storage.close()  # each worker process opens its own
    run_worker(jc, concurrency=concurrency, queues=queues or (jc.config.executor.queue,),
               extra=celery_args, sweep_interval=max(1.0, jc.config.runner.heartbeat))


@click.command()
@format_option
@pass_jc
def workers(jc: JobControl, fmt: str) -> None:
    """List the Celery workers (`jobcontrol worker`) sharing this storage: each one's
    identity, host, pid, start, last heartbeat, queues and the builds it runs. A worker
    whose heartbeat is older than runner.heartbeat_timeout is lost: its builds are
    abandoned and it is forgotten."""
    jc.reap(workers=True)
    known = jc.storage.list_workers()
    running = jc.storage.list_builds(states=[BuildState.RUNNING])
    runs = {w.id: [b for b in running if b.worker_id == w.id] for w in known}
    now = jc.storage.now()
    if fmt == "json":
        echo_json([worker_json(w, runs[w.id], now) for w in known])
        return
    if not known:
        click.echo("no workers")
        return
    echo_table([[w.id, w.host, w.pid, f"{w.started:%Y-%m-%d %H:%M:%S}",
                 f"{format_duration((now - w.heartbeat).total_seconds())} ago",
                 ", ".join(w.queues),
                 ", ".join(f"#{b.id} {b.job_id}" for b in runs[w.id])] for w in known],
               ["worker", "host", "pid", "started (UTC)", "last seen", "queues", "running"])


COMMANDS = [worker, workers]
