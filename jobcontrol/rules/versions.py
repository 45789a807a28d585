"""What a job is now besides its definition (its code version, its input files), for the
outdated rules to compare with what its last success recorded, and what each build records.

A build records, in its definition snapshot, ``"code": {"version", "from", "problem"}`` (see
:class:`~jobcontrol.fingerprints.CodeVersion`) and, for a job with ``inputs:``,
``"input_files": {name: [sha256, size, mtime_ns]}``. Both are read where the build is made,
before it starts, without importing the job's module (see :mod:`jobcontrol.fingerprints`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobcontrol.config import Config, JobDefinition
from jobcontrol.errors import BuildNotFoundError
from jobcontrol.fingerprints import CodeVersion, InputFile, code_version, fingerprint_inputs
from jobcontrol.models import Build, EncodedJSON, JobSummary
from jobcontrol.serialize import StoredValue

if TYPE_CHECKING:  # the rules are handed what the storage holds; they never open one
    from jobcontrol.storage.base import Storage

__all__ = ["JobNow", "JobsNow", "recorded_code", "recorded_inputs", "stored_results"]

#: the keys of a build's definition snapshot that hold what it ran with
CODE_KEY = "code"
INPUTS_KEY = "input_files"


@dataclass(frozen=True)
class JobNow:
    """A job as it is now: what the outdated rules compare with its last success."""

    definition_hash: str
    function: str
    code: CodeVersion
    #: each input file's fingerprint (None: the job names no inputs)
    inputs: Mapping[str, InputFile] | None = None
    #: the job's ``inputs:`` patterns that match no file now (a typo, or not made yet)
    unmatched: tuple[str, ...] = ()

    def record(self, job: JobDefinition, *, here: bool = True) -> EncodedJSON:
        """The definition snapshot a build of ``job`` made now stores. ``here``: the build
        runs code this process imported (inline, or forked from here), and records the
        version of that code (see :func:`~jobcontrol.fingerprints.code_version`); else
        (a Celery worker, which imports it itself) the version read from
        the file now."""
        code = job_code(job, running=True) if here else self.code
        extra: dict[str, Any] = {CODE_KEY: code.as_json()}
        if self.inputs is not None:
            extra[INPUTS_KEY] = {name: item.as_json() for name, item in self.inputs.items()}
        return job.stored_snapshot.extended(extra)


def job_now(job: JobDefinition, directory: Path, last_success: Build | None) -> JobNow:
    """``job`` now; its input files are fingerprinted with the record of ``last_success``
    as the cache (a file whose size and mtime are unchanged is not read again)."""
    inputs = None
    unmatched: list[str] = []
    if job.inputs:
        known = recorded_inputs(last_success) if last_success is not None else None
        inputs = fingerprint_inputs(job.inputs, directory, known or {}, unmatched)
    return JobNow(job.definition_hash, job.function, job_code(job), inputs, tuple(unmatched))


#: the code version of a shell job without ``code_version:``: its code is its command,
#: which its definition hash covers already (its function, jobcontrol's own runner of
#: commands, is not the job's code: a new jobcontrol must not make every shell job outdated)
SHELL_CODE = CodeVersion("command", "command")


def job_code(job: JobDefinition, *, running: bool = False) -> CodeVersion:
    """``job``'s code version now (see :func:`~jobcontrol.fingerprints.code_version`)."""
    if job.shell is not None and job.code_version is None:
        return SHELL_CODE
    return code_version(job.function, job.code_version, running=running)


class JobsNow:
    """:func:`job_now` of a config's jobs, each read once (for one ``status`` or one run:
    the verdict and the record of a build agree)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._seen: dict[str, JobNow] = {}

    def __call__(self, job_id: str, last_success: Build | None) -> JobNow | None:
        """``job_id`` now (None for a job the config no longer has)."""
        found = self._seen.get(job_id)
        if found is None:
            job = self.config.jobs.get(job_id)
            if job is None:
                return None
            found = self._seen[job_id] = job_now(job, self.config.directory, last_success)
        return found

    def record(self, job: JobDefinition, summaries: Mapping[str, JobSummary], *,
               here: bool = True) -> EncodedJSON:
        """What a build of ``job`` made now records (see :meth:`JobNow.record`), given the
        job's summary as read (its last success's fingerprints spare reading files again)."""
        summary = summaries.get(job.id)
        now = self(job.id, summary.last_success if summary is not None else None)
        assert now is not None
        return now.record(job, here=here)


def recorded_code(build: Build) -> dict[str, Any] | None:
    """The code version ``build`` recorded (None: it recorded none, made before they were)."""
    value = build.definition.get(CODE_KEY)
    return value if isinstance(value, dict) else None


def recorded_inputs(build: Build) -> dict[str, InputFile] | None:
    """The input fingerprints ``build`` recorded (None: it recorded none)."""
    value = build.definition.get(INPUTS_KEY)
    if not isinstance(value, dict):
        return None
    found = {name: InputFile.from_json(item) for name, item in value.items()}
    return {name: item for name, item in found.items() if item is not None}


def stored_results(storage: Storage) -> Callable[[int], StoredValue | None]:
    """The stored return value of a build by id, read once each (None: gone or none)."""
    seen: dict[int, StoredValue | None] = {}

    def result_of(build_id: int) -> StoredValue | None:
        if build_id not in seen:
            try:
                seen[build_id] = storage.get_build(build_id).result
            except BuildNotFoundError:
                seen[build_id] = None
        return seen[build_id]

    return result_of
