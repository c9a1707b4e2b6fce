"""Plain HTTP to the lab's own addresses, never through a proxy from the environment."""

from __future__ import annotations

import urllib.request

_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, timeout: float) -> bytes:
    """The body of ``url``; raises OSError (urllib's errors included) when it does not answer."""
    with _direct.open(url, timeout=timeout) as response:
        return response.read()
