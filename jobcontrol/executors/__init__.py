"""Executors run claimed builds: ``local`` (child processes of this one) and, later, remote."""

from jobcontrol.executors.local import BuildObserver, LocalExecutor

__all__ = ["BuildObserver", "LocalExecutor"]
