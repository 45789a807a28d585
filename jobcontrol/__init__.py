"""jobcontrol: run Python jobs defined in YAML, and remember every build.

The public API; everything else may change between versions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobcontrol.context import SkipBuild, current_build, progress
from jobcontrol.errors import (
    BuildNotFoundError,
    BuildStateError,
    ConfigError,
    CycleError,
    DependencyError,
    JobAlreadyRunningError,
    JobControlError,
    JobImportError,
    ParamError,
    RetvalError,
    RunNotFoundError,
    StorageError,
    UnknownJobError,
)
from jobcontrol.models import (
    Build,
    BuildState,
    ExceptionInfo,
    LogRecord,
    ProgressItem,
    Run,
    RunTrigger,
)
from jobcontrol.version import __version__

if TYPE_CHECKING:
    from jobcontrol.core import JobControl, JobStatus
    from jobcontrol.progress_report import ProgressNode, progress_tree

__all__ = [
    "Build",
    "BuildNotFoundError",
    "BuildState",
    "BuildStateError",
    "ConfigError",
    "CycleError",
    "DependencyError",
    "ExceptionInfo",
    "JobAlreadyRunningError",
    "JobControl",
    "JobControlError",
    "JobImportError",
    "JobStatus",
    "LogRecord",
    "ParamError",
    "ProgressItem",
    "ProgressNode",
    "RetvalError",
    "Run",
    "RunNotFoundError",
    "RunTrigger",
    "SkipBuild",
    "StorageError",
    "UnknownJobError",
    "__version__",
    "current_build",
    "progress",
    "progress_tree",
]

_LAZY = {
    "JobControl": "jobcontrol.core",
    "JobStatus": "jobcontrol.core",
    "ProgressNode": "jobcontrol.progress_report",
    "progress_tree": "jobcontrol.progress_report",
}


def __getattr__(name: str) -> Any:
    # jobs import jobcontrol for progress(); they should not pay for the whole runner
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'jobcontrol' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
