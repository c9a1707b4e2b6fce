"""An availability probe: HTTP requests to the lab's entry point, all the time, recorded.

It runs in a thread until stopped (and never longer than ``max_seconds``), sends
one request every ``interval`` seconds to the lab's own address, and records each
answer: when it was sent, how long it took, whether it succeeded, and which version, node
and container answered. One request at a time: a slow answer delays the next request, so
a report counts slow requests by their duration rather than by the samples missing after them.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass

from provision.remote import direct_http

_ANSWER = re.compile(r"version=(\S+) container=(\S+) node=(\S+)")


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the demo's start
    ok: bool
    version: str | None = None
    node: str | None = None
    container: str | None = None
    error: str | None = None
    duration: float | None = None  # seconds until the answer (or the failure); None in older reports

    def to_json(self) -> dict:
        return asdict(self)


def parse_answer(text: str) -> tuple[str, str, str] | None:
    """(version, container, node) from a swarmdeck/web answer."""
    match = _ANSWER.search(text)
    return (match.group(1), match.group(2), match.group(3)) if match else None


class Probe:
    def __init__(self, url: str, started: float, *, interval: float = 0.1, timeout: float = 2.0,
                 max_seconds: float = 900):
        self.url, self.started, self.interval, self.timeout = url, started, interval, timeout
        self.max_seconds = max_seconds
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)

    def start(self) -> "Probe":
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        return list(self.samples)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            begun = time.monotonic()
            self.samples.append(self.request())
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - begun)))

    def request(self) -> Sample:
        sent = time.monotonic()
        t = sent - self.started

        def took() -> float:
            return round(time.monotonic() - sent, 3)

        try:
            parsed = parse_answer(direct_http.get(self.url, self.timeout).decode(errors="replace"))
            if parsed is None:
                return Sample(t, False, error="an answer that is not swarmdeck-web's", duration=took())
            version, container, node = parsed
            return Sample(t, True, version, node, container, duration=took())
        except Exception as err:  # noqa: BLE001 - every failure is a failed request
            return Sample(t, False, error=f"{type(err).__name__}: {err}"[:200], duration=took())

    def counts(self, since: float = 0.0) -> tuple[int, int]:
        """(ok, failed) among the samples taken after ``since``."""
        chosen = [s for s in list(self.samples) if s.t >= since]
        ok = sum(s.ok for s in chosen)
        return ok, len(chosen) - ok
