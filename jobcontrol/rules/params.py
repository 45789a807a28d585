"""The parameters of a build (``params:``, ``build --param``): their values, how they meet
the job's ``kwargs``, and the rule that keeps a build with parameters of its own from
standing for the job.

**The rule.** A build whose parameters all equal the job's defaults is an ordinary build.
A build given any other value (``--param day=2020-01-01``) is recorded with those values
(``Build.params``) and shows in the history as any other, but it is never the job's *last
success*: ``status``, ``outdated``, ``--deps`` and the dependents' ``!retval`` go on reading
the last success made with the defaults, because a one-off build (a re-run of an old day)
did not make the job's regular output. Written here once; the storage honours it by the
``params`` it is given (see :meth:`~jobcontrol.storage.base.Storage.job_summaries`).

**Parameters and kwargs.** Parameters are passed as keyword arguments, after the job's
``kwargs``; a name cannot be both (the config refuses it), so neither silently wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobcontrol.config import JobDefinition
from jobcontrol.config.param_types import json_value
from jobcontrol.config.values import did_you_mean
from jobcontrol.errors import ParamError
from jobcontrol.models import EncodedJSON
from jobcontrol.timeutil import isoformat


def resolve(job: JobDefinition, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every parameter of ``job``: those ``given`` (text or typed values) converted to their
    declared type, the rest their defaults. :class:`ParamError` names an unknown one or a
    value of the wrong type."""
    specs = {spec.name: spec for spec in job.params}
    values = {name: spec.default for name, spec in specs.items()}
    for name, value in (given or {}).items():
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(specs) if specs else "none"
            raise ParamError(job.id, name, f"unknown parameter{did_you_mean(name, specs)}"
                                           f" (its parameters: {known})")
        try:
            values[name] = spec.convert(value)
        except ValueError as exc:
            raise ParamError(job.id, name, f"{exc} ({spec.type})") from None
    return values


def own_params(job: JobDefinition, values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The values that differ from the job's defaults, as stored (JSON); None when none
    do. A build with own parameters is never the job's last success (the module's rule)."""
    own = {spec.name: json_value(values[spec.name]) for spec in job.params
           if spec.name in values and values[spec.name] != spec.default}
    return own or None


def as_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as stored and shown (a date as ``YYYY-MM-DD``)."""
    return {name: json_value(value) for name, value in values.items()}


def call_kwargs(kwargs: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a call: the job's ``kwargs`` (``!retval`` resolved), then
    its parameters (never the same names: see the module's docstring)."""
    return {**kwargs, **values} if values else dict(kwargs)


def recorded_definition(job: JobDefinition, values: Mapping[str, Any],
                        instant: tuple[datetime, datetime | None] | None = None,
                        snapshot: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """The definition a build of ``job`` records: ``snapshot`` (by default the job's; with
    what it runs with, see :meth:`jobcontrol.rules.versions.JobsNow.record`), with the parameter
    values it is given (``param_values``, every one) and, for a scheduled instant, the
    instant (``scheduled_for``) and the interval it covers (``interval``: from the
    schedule's instant before to it), which the job reads from its context
    (:func:`jobcontrol.context.scheduled_for`)."""
    if snapshot is None:
        snapshot = job.stored_snapshot  # encoded once for every build of the job
    if not values and instant is None:
        return snapshot
    extra: dict[str, Any] = {}
    if values:
        extra["param_values"] = as_json(values)
    if instant is not None:
        when, begins = instant
        extra["scheduled_for"] = isoformat(when)
        extra["interval"] = [None if begins is None else isoformat(begins), isoformat(when)]
    if isinstance(snapshot, EncodedJSON):
        return snapshot.extended(extra)
    return {**snapshot, **extra}


def stored_values(job: JobDefinition, build_definition: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values a build recorded (its ``param_values``), typed again: what a
    worker that did not make the build passes to the function."""
    return resolve(job, build_definition.get("param_values"))
