"""``jobcontrol worker``: a Celery worker that runs queued builds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import pass_jc
from jobcontrol.errors import BrokerError

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


COMMANDS = [worker]
