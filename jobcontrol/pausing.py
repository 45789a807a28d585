"""Pausing jobs (``jobcontrol pause`` / ``resume``): the part of the Python API
(:class:`~jobcontrol.core.JobControl` takes it in) that records pauses.

A pause is kept in the storage (who, when, why; who resumed it, when), so every process
sharing the storage honours it: ``build`` (the run's steps, see
:mod:`jobcontrol.execution.orchestrator`), ``build --async``, ``run-due``, ``scheduler``
and the web UI's launch all leave a paused job alone unless forced.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from jobcontrol.models import HOSTNAME, JobPause
from jobcontrol.text import one_line

if TYPE_CHECKING:
    from jobcontrol.config import Config, JobDefinition
    from jobcontrol.storage.base import Storage

#: longest reason kept (a pause reason is one line, shown in tables)
REASON_LIMIT = 500


def who() -> str:
    """``user@host`` of this process: who paused, resumed or cancelled, by the record."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (in a container, say)
        user = str(os.getuid())
    return f"{user}@{HOSTNAME}"


class Pausing:
    """Pause, resume and read pauses: a part of :class:`~jobcontrol.core.JobControl`."""

    config: Config
    storage: Storage

    def job(self, job_id: str) -> JobDefinition:  # JobControl's
        raise NotImplementedError

    def pause(self, job_id: str, *, by: str | None = None, reason: str | None = None
              ) -> tuple[JobPause, bool]:
        """Pause a job: no build of it starts until :meth:`resume` (but ``build --force``).

        Returns the pause in force and whether this call made it (a job already paused
        keeps its pause as recorded). ``by`` defaults to ``user@host``; ``reason`` is kept
        on one line, secrets masked. UnknownJobError for a job not in the config.
        """
        self.job(job_id)
        text = one_line(self.config.masker.text(reason), REASON_LIMIT) if reason else None
        return self.storage.pause_job(job_id, by=by or who(), reason=text or None)

    def resume(self, job_id: str, *, by: str | None = None) -> JobPause | None:
        """End a job's pause; returns it, ended, or None when the job was not paused."""
        self.job(job_id)
        return self.storage.resume_job(job_id, by=by or who())

    def pauses(self, job_ids: Iterable[str] | None = None) -> dict[str, JobPause]:
        """The pauses in force, by job: one storage query."""
        return self.storage.job_pauses(job_ids)

    def pause_history(self, job_id: str, *, limit: int | None = None) -> list[JobPause]:
        """A job's pauses, ended ones too, latest first."""
        self.job(job_id)
        return self.storage.pause_history(job_id, limit=limit)
