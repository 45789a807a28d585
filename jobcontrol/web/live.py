"""What keeps the pages live: the config file read again when it changes, and a small token
that changes when anything the jobs, job, graph and run pages show may have changed.

The pages poll ``GET /api/v1/changes`` (a few index reads, some 60 bytes) every two seconds
and fetch themselves again only when its token changed; app.js then patches in the parts
that differ. Polling rather than Server-Sent Events: it needs no long-lived request (each
one would hold a worker thread of a WSGI server for as long as the page is open), passes
every proxy as is, and is the mechanism the build page already uses.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, current_app, g, jsonify, request

from jobcontrol.config import load_config
from jobcontrol.errors import JobControlError
from jobcontrol.models import BuildState
from jobcontrol.web.helpers import current_jc

if TYPE_CHECKING:
    from jobcontrol.core import JobControl

logger = logging.getLogger(__name__)

bp = Blueprint("live", __name__)

#: where ``create_app`` keeps the :class:`ConfigWatch` in ``app.extensions``
WATCH = "jobcontrol.config_watch"
#: the pages that keep themselves up to date (their body carries the token they show)
LIVE_PAGES = frozenset({"pages.jobs", "pages.job", "pages.graph", "pages.run"})
#: running and queued builds the token looks at most (their progress too)
ACTIVE_LIMIT = 200


class ConfigWatch:
    """The config file of a JobControl, loaded again when its modification time or size
    changes: a good new config replaces the JobControl's (jobs added, changed or removed
    show at once); a bad one is kept out, its error shown on every page until fixed."""

    def __init__(self, jc: JobControl) -> None:
        self.jc = jc
        self.path = jc.config.path
        self.error: str | None = None
        #: goes up with each config loaded or refused: part of the change token
        self.generation = 0
        self._seen = self._stamp()
        self._lock = threading.Lock()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size

    def check(self) -> None:
        """Load the config again if the file changed since last seen."""
        stamp = self._stamp()
        if stamp == self._seen:
            return
        with self._lock:
            if stamp == self._seen:  # another request loaded it meanwhile
                return
            self._seen = stamp
            self.generation += 1
            try:
                config = load_config(self.path)
            except JobControlError as error:
                self.error = str(error)
                logger.warning("config not reloaded, the last good one is kept: %s", error)
                return
            self.jc.config = config
            self.error = None
            logger.info("config reloaded from %s: %d jobs", self.path, len(config.jobs))


def init_reload(app: Flask, jc: JobControl) -> None:
    """Check the config file before each request; give the templates its error."""
    watch = ConfigWatch(jc)
    app.extensions[WATCH] = watch

    @app.before_request
    def reload_config() -> None:
        watch.check()
        if request.endpoint in LIVE_PAGES:
            # read before the page's own reads: a change made while it renders is news
            g.live_token = change_token(jc, watch.generation)

    @app.context_processor
    def config_error() -> dict[str, Any]:
        return {"config_error": watch.error}


def change_token(jc: JobControl, generation: int) -> str:
    """A short text that changes when a build is added, starts, ends, is asked to cancel or
    reports progress, when a job is paused or resumed, or when the config is reloaded.

    (A build deleted shows at the next of these, or a reload.)"""
    storage = jc.storage
    newest = storage.list_builds(limit=1)
    parts: list[Any] = [generation, newest[0].id if newest else 0]
    # a state at a time and no LIMIT: SQLite then reads the (state, id) index, where a
    # LIMIT above the rows there are made it walk every build backwards
    active = [b for state in (BuildState.RUNNING, BuildState.QUEUED)
              for b in storage.list_builds(states=[state])]
    for build in active[:ACTIVE_LIMIT]:
        progress = storage.get_progress(build.id)
        parts += [build.id, build.state.value, build.cancel_requested,
                  max((p.updated for p in progress if p.updated), default=None),
                  sum(p.current for p in progress)]
    for job_id, pause in sorted(storage.job_pauses().items()):
        parts += [job_id, pause.paused]
    return hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()[:16]


@bp.get("/api/v1/changes")
def changes() -> Any:
    """``{"token": ...}``: poll it, and read the pages again when it changed."""
    watch: ConfigWatch = current_app.extensions[WATCH]
    return jsonify({"token": change_token(current_jc(), watch.generation),
                    "config_error": watch.error})
