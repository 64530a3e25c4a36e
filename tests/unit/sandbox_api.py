"""A requests session bound to one stand-in, for the stand-in's own tests."""

from __future__ import annotations

from typing import Any

import requests


class Api:
    """Calls to one sandbox: `api("GET", path, ...)`; the session carries the Bearer token."""

    def __init__(self, session: requests.Session, url: str) -> None:
        self.session = session
        self.url = url

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=10, **kwargs)
