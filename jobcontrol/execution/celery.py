"""The Celery glue of remote builds: the app, its one task, sending build ids, the worker.

Imported only when the config's ``executor`` is ``celery`` (``pip install
'jobcontrol[celery]'``). A message carries a build id and nothing else: the storage holds the
build, and :mod:`jobcontrol.execution.remote` decides what a delivery does with it, so a
message delivered twice (a redelivery, a duplicate) never runs a build twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from jobcontrol.config import ExecutorSettings
from jobcontrol.errors import (
    BrokerUnreachableError,
    JobControlError,
    MissingDependencyError,
)
from jobcontrol.execution.identity import namespace_tag, worker_identity
from jobcontrol.models import HOSTNAME, WorkerRecord
from jobcontrol.storage import open_storage, redact_url
from jobcontrol.timeutil import format_duration

if TYPE_CHECKING:  # the worker is handed one; importing core here would point up a layer
    from jobcontrol.execution.remote import RemoteWorker, WorkerControl
    from jobcontrol.storage.base import Storage

try:
    import celery
    import celery.signals
    import kombu.exceptions
except ImportError as error:  # the extra missing or broken: make_app says which to install
    celery = None
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

logger = logging.getLogger(__name__)

#: the task every build id is sent to
TASK_NAME = "jobcontrol.build"
#: Redis only: seconds after which a message a worker took and did not acknowledge (it died,
#: or its build still runs) is delivered again. Short, since a delivery of a build that is
#: not queued any more does nothing; RabbitMQ gives a dead worker's messages back at once.
VISIBILITY_TIMEOUT = 300
#: storages that workers on other machines can share
SHARED_SCHEMES = ("postgresql", "postgres")


def transport_options(settings: ExecutorSettings) -> dict[str, Any]:
    """Celery's ``broker_transport_options`` for ``settings``: a timeout on every socket
    operation of the broker's client (connecting, a reply, a write), so a broker that takes
    connections and never answers cannot hang a sender; then the config's own
    ``transport_options``, which win."""
    timeout = settings.timeout
    scheme = (settings.broker or "").partition("://")[0]
    options: dict[str, Any] = {}
    if scheme.startswith("redis"):
        options = {"visibility_timeout": VISIBILITY_TIMEOUT,
                   "socket_connect_timeout": timeout, "socket_timeout": timeout}
    elif scheme in ("amqp", "amqps", "pyamqp"):
        options = {"read_timeout": timeout, "write_timeout": timeout}
    options.update(settings.transport_options)
    return options


def make_app(settings: ExecutorSettings) -> Any:
    """The Celery app of ``settings.broker``: late acknowledgement, one message a process
    at a time, no result backend (the storage is the record), a timeout on every broker
    operation."""
    if celery is None:
        assert _IMPORT_ERROR is not None
        raise MissingDependencyError(_IMPORT_ERROR, "celery")
    app = celery.Celery("jobcontrol", broker=settings.broker, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.queue,
        # a message is acknowledged once its build has run: a worker that dies before that
        # (even its process, killed) gives it back to the broker instead of losing it
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # a process takes one message at a time: a long build holds up no other
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        # a worker started before its broker waits for it; a sender gives up (below)
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.timeout,
        broker_transport_options=transport_options(settings),
        worker_hijack_root_logger=True,
    )
    return app


class _OutOfTime(Exception):
    """Raised by the retry policy's errback: the send's deadline would pass."""


class CelerySender:
    """Sends build ids to the workers (see :class:`jobcontrol.execution.remote.Sender`).

    A send gives up after ``settings.timeout`` (retries of a refused connection included;
    an operation under way ends by its own socket timeout, the same) with
    :class:`BrokerUnreachableError`; a library that cannot be imported (a broken install)
    is a :class:`MissingDependencyError`.
    """

    def __init__(self, settings: ExecutorSettings, app: Any = None) -> None:
        self.settings = settings
        self.app = app if app is not None else make_app(settings)
        try:  # kombu imports the transport's client on first use: a broken one says so now
            self.app.connection_for_write().get_transport_cls()
        except ImportError as exc:
            raise MissingDependencyError(exc, "celery") from exc

    def __call__(self, build_id: int, queue: str, *, delay: float = 0.0,
                 waited: int = 0, job: str | None = None) -> None:
        deadline = time.monotonic() + self.settings.timeout

        def errback(exc: BaseException, interval: float) -> None:
            # kombu calls it before each retry: none that would end past the deadline
            if time.monotonic() + interval >= deadline:
                raise _OutOfTime(str(exc) or type(exc).__name__) from exc

        try:
            self.app.send_task(
                TASK_NAME, args=(build_id, waited) if job is None else (build_id, waited, job),
                queue=queue,
                countdown=delay if delay > 0 else None,
                retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2,
                                          "interval_step": 0.5, "interval_max": 2,
                                          "errback": errback},
            )
        except ImportError as exc:  # kombu imports a transport's client on first use
            raise MissingDependencyError(exc, "celery") from exc
        except (_OutOfTime, kombu.exceptions.OperationalError, OSError) as exc:
            raise BrokerUnreachableError(
                f"cannot send build {build_id} to the broker "
                f"{redact_url(self.settings.broker or '')}: "
                f"{_reason(exc, self.settings.timeout)}") from exc


def _reason(exc: BaseException, timeout: float) -> str:
    """What went wrong with the broker, in one line; a timeout says which setting."""
    cause = exc.__cause__ or exc.__context__ or exc
    text = " ".join((str(exc) or type(exc).__name__).split())
    if isinstance(cause, TimeoutError) or "timeout" in type(cause).__name__.lower() \
            or "timed out" in text.lower():
        return f"no answer within {format_duration(timeout)} (executor.timeout): {text}"
    return text


def check_broker(settings: ExecutorSettings) -> str:
    """Connect to ``settings.broker`` (a refused connection retried, within
    ``settings.timeout``); returns its URL with the password hidden.
    :class:`BrokerUnreachableError` says why not."""
    label = redact_url(settings.broker or "")
    sender = CelerySender(settings)
    connection = sender.app.connection_for_write()
    try:
        connection.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5,
                                     interval_max=2, timeout=settings.timeout)
    except (kombu.exceptions.OperationalError, OSError) as exc:
        raise BrokerUnreachableError(f"broker {label}: {_reason(exc, settings.timeout)}"
                                     ) from exc
    finally:
        connection.release()
    return label


def check_shared_storage(url: str, label: str, single_host: bool) -> None:
    """Refuse a storage that workers on other machines cannot share, unless
    ``single_host`` says every worker runs on this machine (SQLite): a usage error (exit
    2), the storage itself being fine."""
    scheme = url.partition("://")[0]
    if scheme in SHARED_SCHEMES:
        return
    if scheme == "sqlite" and single_host:
        return
    if scheme == "sqlite":
        raise JobControlError(
            f"{label} cannot be shared with workers on other machines: use PostgreSQL "
            f"(storage: postgresql://user@host/db), or pass --single-host if every worker "
            f"and every build command runs on this machine"
        )
    raise JobControlError(f"{label} lives in one process: workers need a storage they share "
                       f"(PostgreSQL, or SQLite with --single-host)")


def worker_argv(concurrency: int, queues: Sequence[str], extra: Sequence[str]) -> list[str]:
    """The ``celery worker`` command line ``jobcontrol worker`` runs."""
    argv = ["worker", f"--concurrency={concurrency}", f"--queues={','.join(queues)}",
            "--loglevel=INFO", "--without-gossip", "--without-mingle"]
    if not any(arg in ("-n", "--hostname") or arg.startswith("--hostname=") for arg in extra):
        # several workers on one machine need names of their own
        argv.append("--hostname=" + _filled(DEFAULT_NODE, hostname="%h"))
    return argv + list(extra)


#: the Celery node name of a worker not given one: ``{pid}`` its pid, ``{namespace}`` its
#: boot and PID namespace, short (two containers with one hostname have the same pids),
#: ``%h`` the hostname
DEFAULT_NODE = "jobcontrol.{pid}.{namespace}@%h"


def _filled(node: str, hostname: str = HOSTNAME) -> str:
    return node.replace("{pid}", str(os.getpid())).replace(
        "{namespace}", namespace_tag()).replace("%h", hostname)


def node_name(extra: Sequence[str]) -> str:
    """The Celery node name ``worker_argv`` gives the worker (``-n``/``--hostname`` of
    ``extra`` if given), ``%h`` filled in."""
    node = DEFAULT_NODE
    for index, arg in enumerate(extra):
        if arg in ("-n", "--hostname") and index + 1 < len(extra):
            node = extra[index + 1]
        elif arg.startswith("--hostname="):
            node = arg.partition("=")[2]
    return _filled(node)


def run_worker(jc: WorkerControl, *, concurrency: int, queues: Sequence[str], extra: Sequence[str],
               sweep_interval: float) -> None:
    """Run a Celery worker for ``jc``'s builds until it is stopped (Ctrl-C, SIGTERM).

    Each pool process opens the storage for itself; a thread of the main process sweeps
    (reaps dead builds, retries abandoned ones) every ``sweep_interval`` seconds.
    """
    from jobcontrol.execution.remote import RemoteWorker

    # each process and the sweeper make a JobControl of their own, of ``jc``'s class (the
    # layer above this one: not imported here)
    config, url, make_jc = jc.config, jc.storage.url, type(jc)
    identity = WorkerRecord(worker_identity(node_name(extra)), HOSTNAME, os.getpid(),
                            jc.storage.now(), jc.storage.now(), tuple(queues))
    app = make_app(config.executor)
    sender = CelerySender(config.executor, app)
    per_process: dict[int, RemoteWorker] = {}
    stops: dict[int, _StopOnTerm] = {}

    def here() -> RemoteWorker:
        # after a fork, a process makes its own: a database connection is not shared
        pid = os.getpid()
        if pid not in per_process:
            per_process[pid] = RemoteWorker(make_jc(config, open_storage(url), sender),
                                            sender, worker_id=identity.id)
            stops[pid] = _StopOnTerm(per_process[pid])
        return per_process[pid]

    def process_shutdown(**kwargs: Any) -> None:
        worker = per_process.pop(os.getpid(), None)
        if worker is not None:
            worker.close()

    celery.signals.worker_process_shutdown.connect(process_shutdown, weak=False)

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def build(build_id: int, waited: int = 0, job: str | None = None) -> str:
        worker = here()
        with stops[os.getpid()].task():
            return worker.handle(build_id, waited, job)

    stop = threading.Event()
    sweeping = make_jc(config, open_storage(url), sender)
    sweeping.storage.beat_worker(identity)  # known before it takes a build
    sweeper = threading.Thread(target=_sweep, name="jobcontrol-sweep", daemon=True,
                               args=(sweeping, sender, sweep_interval, stop, identity))
    sweeper.start()
    # a thread of its own, with a connection of its own: a slow sweep (a broker that does
    # not answer) never holds the worker's heartbeat back
    beater = threading.Thread(target=_beat, name="jobcontrol-heartbeat", daemon=True,
                              args=(open_storage(url), identity, config.runner.heartbeat,
                                    stop))
    beater.start()
    try:
        app.worker_main(worker_argv(concurrency, queues, extra))
    finally:
        stop.set()
        sweeper.join(timeout=sweep_interval + 5)
        with contextlib.suppress(JobControlError):  # stopped: gone from `jobcontrol workers`
            sweeping.storage.forget_worker(identity.id)


class _StopOnTerm:
    """SIGTERM in a pool process (systemd's ``KillMode=control-group`` sends it to every
    process of the worker at once). During a task it is held until the task ends, and a
    build running is stopped and recorded ``abandoned`` with the reason; then the process
    commits and ends, by the handler it had (billiard's). Idle, it ends at once. Without
    this the process would die mid-build (or mid-write) and leave its build ``running``
    until a sweep noticed."""

    def __init__(self, worker: RemoteWorker) -> None:
        self.worker = worker
        self.in_task = False
        self.signum: int | None = None
        self.outer = signal.getsignal(signal.SIGTERM)  # installed by billiard by now
        if self.outer is not signal.SIG_IGN:  # a SIGTERM ignored stays ignored
            signal.signal(signal.SIGTERM, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        if not self.in_task:
            self.end(signum, frame)
            return
        self.signum = signum
        if self.worker.running is not None:
            self.worker.stop(f"worker stopped by {signal.Signals(signum).name} before the "
                             f"build ended")

    @contextlib.contextmanager
    def task(self) -> Iterator[None]:
        """Around a task: a SIGTERM that came during it ends the process after it."""
        self.in_task = True
        try:
            yield
        finally:
            self.in_task = False
            if self.signum is not None:
                self.worker.commit()  # the build's end, recorded, is not lost with us
                self.end(self.signum, None)

    def end(self, signum: int, frame: Any) -> None:
        if callable(self.outer):
            self.outer(signum, frame)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _sweep(jc: WorkerControl, sender: CelerySender, interval: float, stop: threading.Event,
           identity: WorkerRecord) -> None:
    from jobcontrol.execution.remote import RemoteWorker

    worker = RemoteWorker(jc, sender, worker_id=identity.id)
    while not stop.wait(interval):
        try:
            worker.sweep()
        except Exception:  # the next sweep tries again; a worker must not die of it
            logger.exception("sweep failed")


def _beat(storage: Storage, identity: WorkerRecord, interval: float,
          stop: threading.Event) -> None:
    """The worker's own heartbeat (see :mod:`jobcontrol.execution.identity`), every
    ``interval`` seconds until ``stop``."""
    try:
        while not stop.wait(interval):
            try:
                storage.beat_worker(identity)
            except JobControlError:  # the next beat tries again; a worker must not die of it
                logger.exception("worker heartbeat failed")
    finally:
        storage.close()
