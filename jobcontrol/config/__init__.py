"""Job definitions: a YAML file (rendered by Jinja2 first) → validated, frozen objects.

``load_config(path)`` is the entry point. Every mistake in the file is a
:class:`~jobcontrol.errors.ConfigError` that names the file, line and column of the offending
key or value. The modules, each importing only those listed before it:

- :mod:`~jobcontrol.config.param_types`: the types of a job's ``params`` and their values;
- :mod:`~jobcontrol.config.settings`: the ``runner:``, ``web:`` and ``executor:`` sections,
  and the checks the frozen definitions share;
- :mod:`~jobcontrol.config.model`: the frozen definitions (Config, JobDefinition, policies,
  Location);
- :mod:`~jobcontrol.config.yaml_loader`: the safe YAML loader: ``!retval``, ``!env``, marks
  on every container, limits on nesting and aliases, located errors;
- :mod:`~jobcontrol.config.events`: its fast path, data straight from libyaml's events;
- :mod:`~jobcontrol.config.values`: parsers of single values (durations, policies,
  settings) and the "did you mean" of a misspelt key;
- :mod:`~jobcontrol.config.sections`: parsers of the settings sections (runner, web,
  executor, secrets);
- :mod:`~jobcontrol.config.schedules`: parsers of the scheduling keys (schedule, timezone,
  schedule_options, max_age, notify);
- :mod:`~jobcontrol.config.commands`: parsers of a shell job's keys (command, env, cwd);
- :mod:`~jobcontrol.config.params`: the parser of a job's ``params``;
- :mod:`~jobcontrol.config.validation`: a loaded document → :class:`Config`, with the
  checks across jobs (dependencies, ``!retval``, cycles);
- :mod:`~jobcontrol.config.loading`: finding and reading the file, Jinja2, then the above.

Importing this package imports the model and the entry points only: PyYAML, Jinja2 and the
validation are imported when a config is first read.
"""

from __future__ import annotations

from jobcontrol.config.loading import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_NAME,
    RENDERED_NOTE,
    find_config_path,
    load_config,
    parse_config,
)
from jobcontrol.config.model import (
    LOG_LEVELS,
    SHELL_FUNCTION,
    Config,
    ExecutorSettings,
    JobDefinition,
    Location,
    RetentionPolicy,
    RetryPolicy,
    RetvalRef,
    RunnerSettings,
    ShellCommand,
    WebSettings,
)

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_NAME",
    "LOG_LEVELS",
    "RENDERED_NOTE",
    "SHELL_FUNCTION",
    "Config",
    "ExecutorSettings",
    "JobDefinition",
    "Location",
    "RetentionPolicy",
    "RetryPolicy",
    "RetvalRef",
    "RunnerSettings",
    "ShellCommand",
    "WebSettings",
    "find_config_path",
    "load_config",
    "parse_config",
]
