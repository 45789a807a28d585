"""Sphinx configuration of jobcontrol's documentation.

Built offline (no intersphinx): ``sphinx-build -W -n -b html docs docs/_build/html``; the
doctests with ``-b doctest``. tests/test_docs.py runs both.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE.parent), str(HERE / "_ext")]

import jobcontrol  # noqa: E402
from jobcontrol.version import __version__  # noqa: E402

project = "jobcontrol"
author = "the jobcontrol developers"
copyright = "the jobcontrol developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx_click",
    "jobcontrol_docs",
]
html_theme = "furo"
html_title = f"jobcontrol {release}"
exclude_patterns = ["_build"]
# "--deps" stays two hyphens, "..." three dots: the docs quote commands and messages
smartquotes = False
templates_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# Without intersphinx (the build needs no network), names from the standard library and
# other packages cannot be linked, nor jobcontrol's internals, which are not documented (their
# modules may move between versions): -n reports a missing name of the public API only.
_public = "|".join(name for name in jobcontrol.__all__ if not name.startswith("_"))
nitpick_ignore_regex = [(r"py:.*", rf"(?!(.*\.)?({_public})$).*")]
