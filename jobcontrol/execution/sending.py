"""Queueing builds for the workers with none left ``queued`` and never sent.

A message carries a build id, so a build is created (``queued``) before its id is sent.
Only the builds that wait for no other build of the plan are sent here; the rest are sent
by the end of their last upstream (see :mod:`jobcontrol.execution.dispatch`), which
cannot come before they exist, since their upstreams are sent after every build is made.
Whatever stops the sending (the broker refusing, or not answering within
``executor.timeout``; Ctrl-C; SIGTERM) cancels every build this call created and did not
send, with the reason. A build whose send was under way is cancelled too: if its message
did reach the broker, the worker finds the build cancelled and does nothing, so the record
stays true either way.

Ctrl-C and SIGTERM are held while the storage is written (a build half made, or a cancel
half written, would be the lie) and act at once while the broker is waited for.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from jobcontrol.errors import BrokerError, ExitCode
from jobcontrol.execution.dispatch import waits_in_plan
from jobcontrol.models import Build, BuildState
from jobcontrol.storage.base import Storage

if TYPE_CHECKING:
    from jobcontrol.execution.remote import Sender


class SendingInterrupted(BrokerError):
    """Ctrl-C or SIGTERM stopped ``build --async`` while it sent builds: those not sent
    were cancelled."""

    exit_code = ExitCode.BROKER

    def __init__(self, signal_name: str, cancelled: Sequence[int]) -> None:
        self.signal_name = signal_name
        self.cancelled = tuple(cancelled)
        ids = ", ".join(str(i) for i in cancelled)
        what = f"; cancelled what was not sent: build {ids}" if ids else ""
        super().__init__(f"interrupted by {signal_name} while sending builds to the "
                         f"broker{what}")


class _Interrupt(BaseException):
    """A signal that arrived while the broker was waited for (never escapes this module)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class _Signals:
    """Ctrl-C and SIGTERM while sending: held (``pending``) during storage writes, raised
    as :class:`_Interrupt` while the broker is waited for (``waiting``)."""

    def __init__(self) -> None:
        self.pending: str | None = None
        self.waiting = False

    def handler(self, outer: Any) -> Callable[[int, Any], None]:
        def handle(signum: int, frame: Any) -> None:
            if outer is signal.SIG_IGN:
                return
            if callable(outer) and outer is not signal.default_int_handler:
                # a caller with a handler of its own (the scheduler's loop) decides; the
                # sending ends within its timeout anyway
                outer(signum, frame)
                return
            self.pending = signal.Signals(signum).name
            if self.waiting:
                raise _Interrupt(self.pending)
        return handle

    def check(self) -> None:
        """Act on a signal held during a storage write."""
        if self.pending is not None:
            raise _Interrupt(self.pending)

    @contextlib.contextmanager
    def broker_wait(self) -> Iterator[None]:
        self.check()
        self.waiting = True
        try:
            yield
        finally:
            self.waiting = False


@contextlib.contextmanager
def _catching_signals() -> Iterator[_Signals]:
    signals = _Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals  # only the main thread gets signals (a web request never does)
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig, outer in previous.items():
        signal.signal(sig, signals.handler(outer))
    try:
        yield signals
    finally:
        for sig, outer in previous.items():
            signal.signal(sig, outer)


def queue_and_send(storage: Storage, job_ids: Sequence[str],
                   create: Callable[[str, dict[str, Build]], Build], send: Sender,
                   ready_job: Callable[[Build], str | None]) -> list[Build]:
    """Create a queued build of each of ``job_ids`` (``create(job_id, made_so_far)``),
    then send the id of each that waits for none of them; returns the builds. On any
    error or interrupt, every build created here that will never be sent is cancelled with
    the reason before the error is raised (:class:`SendingInterrupted` for Ctrl-C and
    SIGTERM): those not sent, but for the ones left waiting for builds that were."""
    made: dict[str, Build] = {}
    sent: set[int] = set()
    with _catching_signals() as signals:
        try:
            for job_id in job_ids:
                made[job_id] = create(job_id, made)
                signals.check()
            for build in made.values():
                if waits_in_plan(build, made.values()):
                    continue
                assert build.queue is not None
                with signals.broker_wait():
                    send(build.id, build.queue, job=ready_job(build))
                sent.add(build.id)
        except _Interrupt as interrupt:
            unsent = _never_sent(list(made.values()), sent)
            _cancel(storage, unsent, f"not sent to the workers: interrupted by "
                                     f"{interrupt.signal_name}")
            raise SendingInterrupted(interrupt.signal_name, [b.id for b in unsent]) from None
        except BaseException as error:
            _cancel(storage, _never_sent(list(made.values()), sent),
                    f"not sent to the workers: {error or type(error).__name__}")
            raise
    if signals.pending is not None:  # came after the last send: nothing to undo, so it
        signal.raise_signal(signal.Signals[signals.pending])  # acts as it would have
    return list(made.values())


def _never_sent(made: Sequence[Build], sent: set[int]) -> list[Build]:
    """The builds of ``made`` (in plan order) that no one will send: not sent, and not
    waiting only for builds that were sent or will be (their ends send them)."""
    coming = set(sent)
    for build in made:
        upstream = set(build.dependency_builds.values()) & {b.id for b in made}
        if build.id not in coming and upstream and upstream <= coming:
            coming.add(build.id)
    return [build for build in made if build.id not in coming]


def _cancel(storage: Storage, builds: Sequence[Build], reason: str) -> None:
    """A record never lies: a build that was not sent never starts."""
    for build in builds:
        storage.finish_build(build.id, BuildState.CANCELLED, reason=reason)
