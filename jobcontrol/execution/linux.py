"""Linux's ``prctl`` for the processes that fork builds (the runner, a pool
worker): a build process dies with its parent, a pool worker adopts what its builds
leave behind. Elsewhere these do nothing (abandoned-build detection covers a dead runner)."""

from __future__ import annotations

import signal
import sys
from typing import Any

_prctl: Any = None


def load_prctl() -> None:
    """Find ``prctl`` in the parent, once: importing ctypes and loading libc take ~10 ms,
    which every forked child paid again when it did this itself."""
    global _prctl
    if _prctl is not None or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = False


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this child when the runner dies (kill -9 of the runner must
    not leave the job running unrecorded). Elsewhere, abandoned-build detection covers it."""
    if _prctl:
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def become_subreaper() -> None:
    """Ask Linux to make this process the parent of its orphaned descendants
    (``PR_SET_CHILD_SUBREAPER``): a pool worker finds what its builds left behind among its
    children. Elsewhere, nothing."""
    if _prctl:
        _prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
