"""The web UI and JSON API (Flask, the ``web`` extra): ``create_app(jobcontrol)``.

Importing this module imports Flask; the CLI does so only for ``jobcontrol web``.
"""

from jobcontrol.web.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
