"""A fork server: a small process that forks the build processes of a large run.

Forking is cheap for a small process and dear for a large one: after ``fork()`` every page
of the parent is copy-on-write, so the runner (its config, storage and imports: tens of MB)
then takes a page fault on each page it writes, build after build, and the child pays the
same to start and to exit. Measured here: about 1,300 page faults and 4-5 ms per build at
30 MB, against about 1 ms for a fork from a 15 MB process.

So a run with many process-isolated builds starts one :class:`ForkServer`: a new Python
interpreter (``python -c``, the runner's ``sys.path``) that imports only the runner's capture
code and the job modules, and keeps two *spare* children forked ahead of need. The runner
sends the job's function path, arguments, build, working directory and environment (only when
it changed), and the three pipe ends the child writes to (``SCM_RIGHTS``); the server hands
them to a spare, answers with its pid, and forks a new spare while the build runs. A spare
waiting for its build does ahead what does not depend on it, and rehearses (see
:func:`_spare`); it runs the build as a child forked by the runner does (with the
:class:`~.runner.ChildCapture` the runner offers for it). The runner watches the child
through a pidfd (Linux 5.3+), signals its process group as before, and asks the server for
its exit status, which the server collects only then (so the process group id cannot be
reused while the runner may still signal it).

The server dies with the runner (``PR_SET_PDEATHSIG``, and at the end of its socket), and the
children die with the server, so a killed runner leaves nothing running.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from jobcontrol.execution.wire import HEADER as _HEADER
from jobcontrol.execution.wire import recv as _recv
from jobcontrol.execution.wire import recv_raw as _recv_raw
from jobcontrol.execution.wire import send as _send
from jobcontrol.execution.wire import send_raw as _send_raw

if TYPE_CHECKING:
    from jobcontrol.execution.runner import ChildCapture

#: what the server answers a request that it could not carry out
_ERROR = "error"


class ForkServerError(Exception):
    """The fork server could not start or serve a request; nothing was started for it (the
    caller forks by itself)."""


class ForkServerLost(ForkServerError):
    """The fork server went away after a spawn request reached it: the child may have been
    forked (it dies with the server), so the build must not be started again."""


def available() -> bool:
    """True where a fork server can work: Linux with pidfds (children of another process
    are watched through them)."""
    return sys.platform.startswith("linux") and hasattr(os, "pidfd_open") \
        and hasattr(socket, "send_fds")


# -- the runner's side ---------------------------------------------------------------------------


class ForkServer:
    """The runner's handle on its fork server: :meth:`spawn` a build's child, :meth:`reap`
    it, :meth:`close` at the end of the run. Safe to use from several threads."""

    def __init__(self) -> None:
        if not available():
            raise ForkServerError("a fork server needs Linux with pidfd_open")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = ("import sys; sys.path[:] = sys.argv[2:]; "
                "from jobcontrol.execution.forkserver import serve; serve(int(sys.argv[1]))")
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-c", code, str(theirs.fileno()), *sys.path],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True,
            )
        except OSError as exc:
            ours.close()
            raise ForkServerError(f"cannot start the fork server: {exc}") from exc
        finally:
            theirs.close()
        self._sock = ours
        self._lock = threading.Lock()
        self.pid = self._process.pid
        #: ``os.environ`` (see :meth:`spawn`) when the server last received it (None: not
        #: sent yet); a request carries the environment only when it changed
        self._environ_data: dict[Any, Any] | None = None
        #: children released (see :meth:`release`) since the last request
        self._released: list[int] = []

    def _call(self, message: tuple[Any, ...], fds: tuple[int, ...] = ()) -> Any:
        with self._lock:
            reply = self._exchange(message, fds)
        return self._check(reply)

    def _exchange(self, message: tuple[Any, ...], fds: tuple[int, ...]) -> Any:
        """Send a request (its kind, the children released since the last one, the rest),
        return the reply (the caller holds the lock)."""
        payload = pickle.dumps((message[0], self._released, *message[1:]),
                               protocol=pickle.HIGHEST_PROTOCOL)
        try:
            _send_raw(self._sock, payload, fds)
        except OSError as exc:  # not received whole: the server forked nothing for it
            raise ForkServerError(f"fork server {self.pid}: {exc}") from exc
        self._released = []
        try:
            reply, _ = _recv(self._sock)
        except (OSError, EOFError, pickle.PickleError) as exc:
            raise ForkServerLost(f"fork server {self.pid}: {exc}") from exc
        return reply

    def _check(self, reply: Any) -> Any:
        if isinstance(reply, tuple) and reply and reply[0] == _ERROR:
            raise ForkServerError(f"fork server {self.pid}: {reply[1]}")
        return reply

    def spawn(self, function: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              child_args: tuple[Any, ...], fds: tuple[int, int, int]) -> int:
        """Fork a child that runs ``function`` (a function path, imported by the server)
        as a child forked by the runner does, with ``fds`` (frame, stdout and stderr
        pipe ends) and ``child_args`` (build, result mode, masker); returns its pid.

        :class:`ForkServerError` if the request cannot be sent (arguments that do not
        pickle, say) or the server cannot serve it; nothing was started then.
        """
        try:
            job = pickle.dumps((function, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
            # for the child alone: the server passes it on without unpickling it
            child = pickle.dumps(child_args, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # anything pickling a user's value can raise
            raise ForkServerError(f"cannot send the job's arguments: {exc}") from exc
        cwd = os.getcwd()
        with self._lock:
            # CPython keeps the variables, encoded, in os.environ._data: compared with a
            # copy in ~0.3 us, where a decoded copy of os.environ takes ~16 us
            data = getattr(os.environ, "_data", None)
            if not isinstance(data, dict):  # elsewhere: that decoded copy
                data = dict(os.environ)
            changed = data != self._environ_data
            environ = dict(os.environ) if changed else None
            reply = self._exchange(("spawn", job, child, cwd, environ), fds)
            if changed:  # received (an error reply too comes after the server read it)
                self._environ_data = dict(data)
        return int(self._check(reply))

    def reap(self, pid: int) -> int:
        """Collect an exited (or killed) child; its wait status (SIGKILL's where the server
        died: its children died with it, PDEATHSIG)."""
        try:
            return int(self._call(("reap", pid)))
        except ForkServerError:
            return signal.SIGKILL

    def release(self, pid: int) -> None:
        """Let the server collect an exited (or killed) child whenever it can: the runner,
        which has killed its process group, needs nothing more. Told with the next request
        (a message of its own would wake the server up once more per build); the system
        collects those released last when the server leaves."""
        with self._lock:
            self._released.append(pid)

    def alive(self) -> bool:
        """False once the server process has exited."""
        return self._process.poll() is None

    def close(self) -> None:
        """Stop the server (its children were reaped already, or die with it)."""
        with self._lock:
            self._sock.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - it leaves at EOF at once
            self._process.kill()
            self._process.wait()


# -- the server's side ---------------------------------------------------------------------------


def serve(fd: int) -> None:
    """The server's loop: answer requests on ``fd`` until the runner closes it."""
    from jobcontrol.execution import linux

    sock = socket.socket(fileno=fd)
    linux.load_prctl()
    linux.die_with_parent()
    # Ctrl-C and a service manager's SIGTERM are the runner's to handle (it stops the builds
    # and records why); the server leaves when the runner closes the socket or dies
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = _Server(sock)
    while True:
        try:
            payload, fds = _recv_raw(sock)
        except EOFError:
            return
        try:
            message = pickle.loads(payload)
            server.released.update(message[1])
            reply = server.answer(message, payload, fds)
        except Exception as exc:
            reply = (_ERROR, f"{type(exc).__name__}: {exc}")
        finally:
            for received in fds:
                os.close(received)
        _send(sock, reply)
        server.replenish()  # the runner has its answer: off its critical path


class _Server:
    """The server's state: the job functions it imported, and its spare processes.

    A spare is a child forked ahead of need, waiting for its build: a spawn request hands
    it the build and is answered at once, and the next spare is forked after the answer,
    while the build runs (on another core), so the fork is off the runner's critical path.
    Each build still runs in a process of its own, forked from the server's clean state.

    Two are kept: the one a request takes was forked a build earlier, and has had the time
    to rehearse (see :func:`_spare`), while its replacement is forked and rehearses.
    """

    #: how many spares are kept forked ahead
    SPARES = 2

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.functions: dict[str, Callable[..., Any]] = {}
        #: the spares, oldest first: pid, socket, and the generation of their environment
        self.spares: collections.deque[tuple[int, socket.socket, int]] = collections.deque()
        #: children the runner is done with, not collected yet
        self.released: set[int] = set()
        #: the runner's ``os.environ`` as it last sent it, and its generation (one more
        #: at each change); ``os.environ`` here (and in the spares forked from now on) is
        #: that of ``forked_generation``
        self.environ = dict(os.environ)
        self.generation = self.forked_generation = 0
        #: the child's part of the last spawn request (build, result mode, masker): what
        #: the spares forked from now on rehearse with
        self.rehearsal: bytes | None = None
        #: the runner's working folder as it last sent it (None: no spawn request yet)
        self.cwd: str | None = None
        #: the spares' capture (runner.ChildCapture), made and rehearsed here once (None:
        #: each spare makes its own)
        self.capture: ChildCapture | None = None
        self.capture_made = False

    def collect_released(self) -> None:
        """Collect the released children that have exited (zombies hold no resources but
        a pid; they are collected at the next request)."""
        for pid in list(self.released):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.released.discard(pid)

    def answer(self, message: Any, payload: bytes, fds: list[int]) -> Any:
        """The reply to a request (``message``, as it came: ``payload``)."""
        self.collect_released()
        kind = message[0]
        if kind == "reap":
            _, status = os.waitpid(message[2], 0)
            return status
        if kind != "spawn":
            raise ValueError(f"unknown request {kind!r}")
        _, _, job, child, cwd, environ = message
        # first, whatever fails after: the runner takes the environment for received
        if environ is not None and environ != self.environ:
            self.environ = environ
            self.generation += 1
        if len(fds) != 3:
            raise ValueError(f"a spawn request needs 3 file descriptors, got {len(fds)}")
        # the arguments are loaded here too: what cannot be loaded is answered (the runner
        # forks the build itself), and what they need is imported once, for every spare
        function, _, _ = pickle.loads(job)
        if function not in self.functions:
            # imported here once (an import error is answered: the runner forks itself),
            # so that the spares forked from now on have the module
            from jobcontrol.importing import import_callable

            self.functions[function] = import_callable(function)
        pid = self._hand_over(payload, fds)
        self.rehearsal = child
        self.cwd = cwd
        return pid

    def replenish(self) -> None:
        """Fork spares until there are :attr:`SPARES`, in the runner's folder and
        environment as it last sent them; a request that is waiting meanwhile is served
        first, while a spare is ready for it."""
        if self.cwd is None:  # the spares come with the first build (and its module)
            return
        if not self.capture_made:  # once, before the first spares
            self.capture_made = True
            self.capture = _rehearsed_capture(self.rehearsal)
        while len(self.spares) < self.SPARES:
            if self.spares and select.select([self.sock], [], [], 0)[0]:
                return
            if os.getcwd() != self.cwd:
                with contextlib.suppress(OSError):  # gone: a spare's build fails there
                    os.chdir(self.cwd)
            if self.forked_generation != self.generation:
                os.environ.clear()
                os.environ.update(self.environ)
                self.forked_generation = self.generation
            self.spares.append(self._fork_spare())

    def _hand_over(self, payload: bytes, fds: list[int]) -> int:
        """Give the build to a spare (forked now if none is ready); its pid."""
        while True:
            fresh = not self.spares
            # forked for this build, a spare starts on it at once (no rehearsal)
            pid, conn, generation = self._fork_spare(rehearse=False) if fresh \
                else self.spares.popleft()
            # a spare forked before the environment last changed gets it from here
            environ = b"" if generation == self.generation else pickle.dumps(
                self.environ, protocol=pickle.HIGHEST_PROTOCOL)
            try:
                # one message: a spare runs nothing unless it received all of it, so a
                # failed send leaves nothing started
                _send_raw(conn, _HEADER.pack(len(environ)) + environ + payload, fds)
                return pid
            except OSError:  # that spare died (killed by someone): the next one
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                if fresh:
                    raise
            finally:
                conn.close()

    def _fork_spare(self, rehearse: bool = True) -> tuple[int, socket.socket, int]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # what the server holds is never collected in a child: a collection there would
        # touch (and copy) every page of it
        gc.freeze()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child (coverage cannot follow os._exit)
            ours.close()
            self.sock.close()
            for _, other, _ in self.spares:
                other.close()
            _spare(theirs, self.functions, self.pid, self.rehearsal if rehearse else None,
                   self.capture)
        theirs.close()
        return pid, ours, self.forked_generation


#: True in a spare that rehearsed its build (see :func:`_spare`; tests look at it)
_rehearsed = False


def _spare(conn: socket.socket, functions: dict[str, Callable[..., Any]],
           server_pid: int, rehearsal: bytes | None, capture: ChildCapture | None) -> None:
    """A spare's life: wait for its build, run it like a forked child; never returns.

    While it waits, it does what does not depend on the build (see
    :class:`~.runner.ChildCapture`) and rehearses with ``rehearsal`` (the child's
    part of the previous request), unless its build has come already: the build then
    starts sooner, with fewer page faults on its way.
    """
    from jobcontrol.execution import linux, runner

    code = 0
    try:
        linux.die_with_parent()
        if os.getppid() != server_pid:  # the server died before prctl took effect
            os._exit(0)
        capture = capture or runner.ChildCapture()
        capture.isolate()
        if rehearsal is not None and not select.select([conn], [], [], 0)[0]:
            _rehearse(capture, rehearsal)
        try:
            message, fds = _recv_raw(conn)
        except EOFError:  # the server is closing (or died while sending): no build
            os._exit(0)
        conn.close()
        (size,) = _HEADER.unpack_from(message)
        environ = message[_HEADER.size:_HEADER.size + size]
        payload = memoryview(message)[_HEADER.size + size:]
        _, _, job, child, cwd, _ = pickle.loads(payload)
        function, args, kwargs = pickle.loads(job)
        build, result_mode, masker = pickle.loads(child)
        if os.getcwd() != cwd:
            os.chdir(cwd)
        if environ:  # the environment changed since this spare was forked
            os.environ.clear()
            os.environ.update(pickle.loads(environ))
        func = functions.get(function)
        if func is None:  # forked before the server imported it (the first build)
            from jobcontrol.importing import import_callable

            func = import_callable(function)
        frame_w, out_w, err_w = fds
        capture.run(frame_w, out_w, err_w, func, args, kwargs, build, result_mode, masker)
    except BaseException:
        code = 70  # the capture itself broke: the runner reports the exit code
    finally:
        os._exit(code)


#: how many times the server rehearses before its first spares: Python specializes the
#: code of a function after a few calls (measured: 10 took the faults of a spare's own
#: rehearsal from ~380 to ~285; 1, to ~305; 30, to ~275)
_SERVER_REHEARSALS = 10


def _rehearsed_capture(rehearsal: bytes | None) -> ChildCapture | None:
    """A capture for the spares, made and rehearsed here: they inherit its writers, the
    capture handler its rehearsals left idle, and code that ran here (specialized, with
    its type lookups cached), so that their own rehearsals write fewer pages. Like theirs,
    a rehearsal here runs no code of a job's and sends nothing (see :func:`_rehearse`)."""
    from jobcontrol.execution import runner

    if rehearsal is None:  # pragma: no cover - made after a spawn request
        return None
    capture = runner.ChildCapture()
    root = logging.getLogger()
    handlers = root.handlers[:]  # the server's own (a job module's basicConfig, say): kept
    root.handlers[:] = []        # out of the rehearsals
    try:
        for _ in range(_SERVER_REHEARSALS):
            build, result_mode, masker = pickle.loads(rehearsal)
            capture.rehearse(build, result_mode, masker)
    except Exception:  # pragma: no cover - the spares make their own
        return None
    finally:
        root.handlers[:] = handlers
    return capture


def _rehearse(capture: ChildCapture, rehearsal: bytes) -> None:
    """Rehearse a build with the child's part of a previous request: it holds jobcontrol's
    own values only (a build, a result mode, a masker), never a job's arguments, so loading
    it runs no code of a job's."""
    global _rehearsed
    try:
        build, result_mode, masker = pickle.loads(rehearsal)
        capture.rehearse(build, result_mode, masker)
    except Exception:  # pragma: no cover - a rehearsal is no build: the build runs anyway
        return
    _rehearsed = True
