"""Plain HTTP to the lab's own addresses, never through a proxy from the environment."""

from __future__ import annotations

import urllib.request
from typing import Mapping

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, timeout: float, headers: Mapping[str, str] | None = None) -> bytes:
    """The body of ``url``; raises OSError (urllib's errors included) when it does not answer."""
    with _direct.open(urllib.request.Request(url, headers=dict(headers or {})), timeout=timeout) as response:
        return response.read()
