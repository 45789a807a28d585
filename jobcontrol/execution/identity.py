"""Who a worker is, across machines and containers.

A hostname and a pid do not name a process: containers with host networking share the
hostname, cloned VMs too, and each PID namespace counts pids from 1. A worker's identity is
its Celery node name and its pid, with the machine's boot id and its PID namespace
(``/proc/sys/kernel/random/boot_id``, the inode of ``/proc/self/ns/pid``):
``NODE~PID~BOOT~PIDNS``. Only a process of the same boot and PID namespace may look a
worker's pid up (:func:`same_namespace`); any other judges it by its heartbeat alone.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache

#: separates the parts of an identity (a Celery node name never holds it)
SEPARATOR = "~"


@cache
def namespace_id() -> str:
    """``BOOT~PIDNS`` of this process: the boot id and the PID namespace's inode ("?"
    for what this system does not tell)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip() or "?"
    except OSError:
        boot = "?"
    try:
        pidns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pidns = "?"
    return f"{boot}{SEPARATOR}{pidns}"


def namespace_tag() -> str:
    """A short name of this process's boot and PID namespace, for names that must differ
    between containers of one hostname (their pids are all 1 or so)."""
    return hashlib.sha1(namespace_id().encode()).hexdigest()[:8]


def worker_identity(node: str, pid: int | None = None) -> str:
    """The identity of the worker whose Celery node name is ``node`` and whose main process
    is ``pid`` (default: this one)."""
    return SEPARATOR.join((node.replace(SEPARATOR, "-"),
                           str(os.getpid() if pid is None else pid), namespace_id()))


def same_namespace(worker_id: str) -> bool:
    """Whether the worker ``worker_id`` runs in this process's boot and PID namespace, where
    its pids mean what they mean here."""
    parts = worker_id.split(SEPARATOR)
    return len(parts) == 4 and is_this_namespace(SEPARATOR.join(parts[2:]))


def is_this_namespace(pid_namespace: str) -> bool:
    """Whether ``BOOT~PIDNS`` (a build's :attr:`~jobcontrol.models.Build.pid_namespace`)
    is this process's, as far as this system tells (a namespace it does not tell, "?", is
    never this one)."""
    return "?" not in pid_namespace.split(SEPARATOR) and pid_namespace == namespace_id()


def worker_pid(worker_id: str) -> int | None:
    """The pid an identity names (in its own namespace), None for a malformed one."""
    parts = worker_id.split(SEPARATOR)
    return int(parts[1]) if len(parts) == 4 and parts[1].isdigit() else None
