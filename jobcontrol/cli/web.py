"""``jobcontrol web``: serve the web UI and JSON API (Flask is imported only here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from jobcontrol.cli.helpers import pass_jc
from jobcontrol.errors import JobControlError, MissingDependencyError

if TYPE_CHECKING:
    from jobcontrol.core import JobControl


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; other than loopback only with web: auth: set.")
@click.option("--port", type=click.IntRange(0, 65535), default=5050, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--insecure-no-auth", is_flag=True,
              help="Serve other machines without a login (anyone who reaches the port can "
                   "run and delete builds).")
@pass_jc
def web(jc: JobControl, host: str, port: int, insecure_no_auth: bool) -> None:
    """Serve the web UI and the JSON API (needs the web extra: pip install 'jobcontrol[web]')."""
    try:
        from werkzeug.serving import make_server

        from jobcontrol.web import create_app
        from jobcontrol.web.security import is_loopback
    except ImportError as error:
        raise MissingDependencyError(error, "web") from error
    loopback = host == "localhost" or is_loopback(host)
    if not loopback and not jc.config.web.auth and not insecure_no_auth:
        raise JobControlError(
            f"refusing to serve {host} without authentication: configure web: auth: (users "
            f"or a token) in {jc.config.path}, bind 127.0.0.1, or pass --insecure-no-auth"
        )
    app = create_app(jc, insecure_no_auth=insecure_no_auth)
    try:
        server = make_server(host, port, app, threaded=True)
    except (OSError, SystemExit) as error:  # werkzeug exits on a port in use
        raise JobControlError(f"cannot listen on {host}:{port}: {error}") from None
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"jobcontrol web: serving http://{shown}:{server.server_port}/ "
               f"(Ctrl-C to stop)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


COMMANDS = [web]
