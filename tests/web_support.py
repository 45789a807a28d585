"""Helpers for the web tests: a project on a shared storage, a Flask test client, CSRF."""

from __future__ import annotations

import re
from typing import Any

from jobcontrol import JobControl
from jobcontrol.errors import BuildStateError
from jobcontrol.models import Build, BuildState

_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_from(html: str) -> str:
    """The CSRF token a page carries (every page has it in a meta tag)."""
    match = _META.search(html)
    assert match, "no csrf-token meta tag in the page"
    return match.group(1)


def page_token(client: Any, path: str = "/") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return csrf_from(response.get_data(as_text=True))


class FakeCancelJobControl(JobControl):
    """``JobControl.cancel`` as the lead's work on main specifies it, until that is merged
    into this branch: a queued or running build becomes ``cancelled``; a finished one raises
    BuildStateError. Records each call to check the web passes the documented arguments."""

    calls: list[tuple[int, str | None, str | None]]

    def cancel(self, build_id: int, *, by: str | None = None,
               reason: str | None = None) -> Build:
        self.__dict__.setdefault("calls", []).append((build_id, by, reason))
        build = self.storage.get_build(build_id)
        if build.state.finished:
            raise BuildStateError(f"build {build_id} is {build.state}: it cannot be cancelled")
        return self.storage.finish_build(build_id, BuildState.CANCELLED,
                                          reason=reason or f"cancelled by {by}")
