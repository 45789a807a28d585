"""Job callables of tests/test_pool.py: what a build leaves in a warm worker, and how it
can end one. Copied beside each test's config file (with tests/jobfuncs.py)."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
#: memory a leaky job keeps (a module global lives as long as its worker)
_kept: list[bytes] = []


def pid() -> int:
    return os.getpid()


def exit_now(code: int = 3) -> None:
    logging.getLogger("pooljobs").info("exiting with %s", code)
    os._exit(code)


def segfault() -> None:
    ctypes.string_at(0)


def leak(megabytes: int) -> int:
    """Keeps ``megabytes`` of memory, touched, in a module global; its pid."""
    _kept.append(os.urandom(megabytes << 20))
    return os.getpid()


def barrier(tag: str, count: int) -> int:
    """Waits (10 s at most) until ``count`` builds of it run at once; its pid."""
    folder = HERE / "barrier"
    folder.mkdir(exist_ok=True)
    (folder / tag).write_text(str(os.getpid()))
    deadline = time.monotonic() + 10
    while len(list(folder.iterdir())) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the builds did not run at once")
        time.sleep(0.01)
    return os.getpid()


def _noted(signum: int, frame: object) -> None:
    pass


def meddle() -> None:
    """Changes what a worker restores after a build."""
    os.chdir("/")
    os.environ["POOL_MEDDLED"] = "yes"
    os.umask(0o077)
    signal.signal(signal.SIGUSR1, _noted)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.setitimer(signal.ITIMER_REAL, 30)
    logging.getLogger().addHandler(logging.StreamHandler(sys.__stderr__))
    logging.disable(logging.CRITICAL)
    sys.path.insert(0, "/meddled")
    subprocess.Popen(["sleep", "600"])  # left running: killed when the build ends
    (HERE / "meddle.pid").write_text(str(os.getpid()))


def inspect() -> dict:
    """What :func:`meddle` changed, as the next build in the worker sees it."""
    umask = os.umask(0)
    os.umask(umask)
    return {
        "pid": os.getpid(), "cwd": os.getcwd(), "env": os.environ.get("POOL_MEDDLED"),
        "umask": umask, "usr1": signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL,
        "term_ignored": signal.getsignal(signal.SIGTERM) is signal.SIG_IGN,
        "alarm": signal.getitimer(signal.ITIMER_REAL)[0],
        "root_handlers": len(logging.getLogger().handlers),
        "disabled": logging.root.manager.disable, "path": "/meddled" in sys.path,
        "children": sorted(_children()),
    }


def _children() -> list[int]:
    pids: list[int] = []
    for task in os.listdir("/proc/self/task"):
        pids += map(int, Path(f"/proc/self/task/{task}/children").read_text().split())
    return pids


def fork_and_return() -> int:
    """Forks; both processes return from the job (the child, without ``os._exit``), the
    parent once the child has exited."""
    child = os.fork()
    if child:
        os.waitpid(child, 0)
    return 1


def stubborn() -> None:
    """Ignores SIGTERM and sleeps: only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (HERE / "stubborn.pid").write_text(str(os.getpid()))
    time.sleep(60)


def daemon() -> int:
    """Starts a process in a session of its own that writes to the build's stdout for a
    while (it outlives the build); its pid."""
    child = subprocess.Popen(["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do "
                              "echo daemon-line; sleep 0.1; done"], start_new_session=True)
    (HERE / "daemon.pid").write_text(str(child.pid))
    return os.getpid()


def closes_stdout() -> int:
    """Closes file descriptors 1 and 2 (the build's output pipes); its pid."""
    os.close(1)
    os.close(2)
    return os.getpid()


def echo_in_subprocess(text: str) -> int:
    """A subprocess writes ``text`` to the stdout it inherits; its pid."""
    subprocess.run(["echo", text], check=True)
    return os.getpid()
