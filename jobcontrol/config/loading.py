"""Reading a config: find the file, read it, render it by Jinja2, load its YAML, validate.

:func:`load_config` is the entry point; :func:`parse_config` does the same from text. The YAML
is read by :mod:`~jobcontrol.config.yaml_loader` (fast path for plain documents:
:mod:`~jobcontrol.config.events`) and checked by :mod:`~jobcontrol.config.validation`; both,
and PyYAML and Jinja2, are imported on the first load, not with this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobcontrol.config.model import Config
from jobcontrol.errors import ConfigError
from jobcontrol.secrets import Masker
from jobcontrol.text import one_line

if TYPE_CHECKING:
    from types import TracebackType

    from jobcontrol.config.yaml_loader import Document

DEFAULT_CONFIG_NAME = "jobcontrol.yaml"
CONFIG_ENV_VAR = "JOBCONTROL_CONFIG"
RENDERED_NOTE = " (line of the rendered config; see `jobcontrol config`)"
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def find_config_path(explicit: str | None = None) -> Path:
    """The config file to use: ``explicit`` (``--config``), ``$JOBCONTROL_CONFIG``, then
    ``./jobcontrol.yaml``. The path is returned as given, so messages show it that way.
    """
    if explicit:
        return _existing_file(explicit, "config file")
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return _existing_file(from_env, f"config file (from ${CONFIG_ENV_VAR})")
    default = Path(DEFAULT_CONFIG_NAME)
    if default.is_file():
        return default
    raise ConfigError(
        f"no config file: pass -c FILE, set {CONFIG_ENV_VAR}, or create ./{DEFAULT_CONFIG_NAME}",
        str(default),
    )


def _existing_file(given: str, what: str) -> Path:
    path = Path(given)
    if path.is_dir():
        raise ConfigError(f"{what} is a directory, not a file", given)
    if not path.exists():
        raise ConfigError(f"{what} does not exist", given)
    return path


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, render, parse and validate the config file at ``path``."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file does not exist", name) from None
    except IsADirectoryError:
        raise ConfigError("config file is a directory, not a file", name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file is not UTF-8 text ({exc.reason})", name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror or exc}", name) from None
    return parse_config(text, path)


def parse_config(text: str, path: str | os.PathLike[str]) -> Config:
    """Like :func:`load_config`, from ``text``; ``path`` names it in messages and places it."""
    from jobcontrol.config.validation import build_config  # and PyYAML: on first load

    name = str(path)
    resolved = Path(path).resolve()  # once: it asks the file system about every folder
    rendered = render_template(text, name, resolved.parent)
    env_values: set[str] = set()
    try:
        document = load_yaml(rendered, name)
        env_values = document.env_values
        return build_config(document, file=name, path=resolved, rendered=rendered)
    except RecursionError:
        raise ConfigError("the config is nested too deeply", name) from None
    except ConfigError as exc:
        # a message may quote a value !env read (a secret): never show one
        exc.message = Masker(env_values).text(exc.message)
        if rendered != text and exc.line is not None:
            # the lines counted are those of the rendered text, not of the file on disk
            exc.message += RENDERED_NOTE
        exc.args = (str(exc),)
        raise


def load_yaml(text: str, file: str) -> Document:
    """The YAML document in ``text``: its data (with marks), the position of its root node
    (None for an empty file) and the values ``!env`` read. libyaml's events build most
    configs (:mod:`~jobcontrol.config.events`); anything else, every error included, is
    loaded by PyYAML's composer (:mod:`~jobcontrol.config.yaml_loader`)."""
    from jobcontrol.config import events, yaml_loader  # PyYAML: on first load

    loader_cls = yaml_loader.loader_class()
    if events.usable(loader_cls):
        document = events.load_events(loader_cls, text, file)
        if document is not None:
            return document
    return yaml_loader.load_nodes(loader_cls, text, file)


# --------------------------------------------------------------------------- Jinja


def render_template(text: str, name: str, directory: Path) -> str:
    """``text`` rendered by Jinja2 with ``env`` (the environment variables) available.

    Templates may ``{% include %}``/``{% import %}`` files beside the config. Text without
    template syntax is returned as is, without importing Jinja (CLI start-up stays fast).
    """
    if not any(marker in text for marker in _TEMPLATE_MARKERS):
        return text
    import jinja2

    def main_source(template: str) -> tuple[str, str, Any] | None:
        return (text, name, lambda: True) if template == name else None

    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        loader=jinja2.ChoiceLoader(
            [jinja2.FunctionLoader(main_source), jinja2.FileSystemLoader(str(directory))]
        ),
    )
    try:
        return environment.get_template(name).render(env=dict(os.environ))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"template syntax error: {one_line(exc.message or str(exc))}",
            exc.filename or name,
            exc.lineno,
        ) from None
    except Exception as exc:  # a template is code: any error in it is the config's mistake
        file, line = _template_frame(exc.__traceback__, name)
        detail = one_line(str(exc))
        if not isinstance(exc, jinja2.TemplateError):
            detail = f"{type(exc).__name__}: {detail}"
        elif isinstance(exc, jinja2.TemplateNotFound):
            detail = f"template not found: {detail}"
        raise ConfigError(f"template error: {detail}", file, line) from None


def _template_frame(tb: TracebackType | None, default: str) -> tuple[str, int | None]:
    """File and line of the innermost template frame (Jinja rewrites tracebacks so that
    its frames carry the template's file name and line)."""
    found: tuple[str, int | None] = (default, None)
    while tb is not None:
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found
