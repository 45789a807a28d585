"""Pausing jobs (``jobcontrol pause`` / ``resume``): the part of the Python API
(:class:`~jobcontrol.core.JobControl` takes it in) that records pauses.

A pause is kept in the storage (who, when, why; who resumed it, when), so every process
sharing the storage honours it: ``build`` (the run's steps, see
:mod:`jobcontrol.execution.orchestrator`), ``build --async``, ``run-due``, ``scheduler``
and the web UI's launch all leave a paused job alone unless forced.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from jobcontrol.models import HOSTNAME, JobPause
from jobcontrol.text import one_line

if TYPE_CHECKING:
    from jobcontrol.config import Config, JobDefinition
    from jobcontrol.rules.plan import PlannedStep
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

    def hold_paused(self, steps: Sequence[PlannedStep]) -> list[PlannedStep]:
        """A plan (in order) with its paused jobs held as a run holds them (see
        :mod:`jobcontrol.execution.orchestrator`): a paused step due to build is not, nor
        is a step due to build after a step held."""
        pauses = self.pauses(step.job_id for step in steps)
        held: set[str] = set()
        result = []
        for step in steps:
            if step.build:
                dependencies = self.config.jobs[step.job_id].dependencies
                dep = next((d for d in dependencies if d in held), None)
                if dep is not None or step.job_id in pauses:
                    held.add(step.job_id)
                    why = (f"dependency {dep} is paused" if dep is not None else
                           f"{pauses[step.job_id].describe()}; --force builds it")
                    step = dataclasses.replace(step, build=False, reason=why)
            result.append(step)
        return result

    def pause_history(self, job_id: str, *, limit: int | None = None) -> list[JobPause]:
        """A job's pauses, ended ones too, latest first."""
        self.job(job_id)
        return self.storage.pause_history(job_id, limit=limit)
