"""Polling with errors that say what was awaited, what was last seen, and what to try."""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

import requests

from provision.errors import Interrupted, LabError, WaitTimeout

T = TypeVar("T")

# Ctrl-C reaches the main thread only: the helper threads of a run (waiting for SSH on
# every node in parallel) would keep polling until their timeouts, and keep the process
# from ending after its rollback. Once this is set, their waits give up at the next poll.
_interrupted = threading.Event()


def stop_helper_threads() -> None:
    """Make every ``wait_until`` running in a thread other than the main one give up."""
    _interrupted.set()


class NotYet(Exception):
    """Raised by a check to say "not yet" along with what it saw."""


def wait_until(
    check: Callable[[], T],
    *,
    timeout: float,
    describe: str,
    hint: str = "",
    interval: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``check`` until it returns a truthy value and return that value.

    An exception raised by ``check`` counts as "not yet" and is kept as the last
    observation (``NotYet`` carries just that); a ``LabError`` is re-raised at
    once (it already explains itself).

    Raises:
        WaitTimeout: naming ``describe``, the timeout, the last observation and ``hint``.
    """
    deadline = clock() + timeout
    last: object = "nothing yet"
    while True:
        if _interrupted.is_set() and threading.current_thread() is not threading.main_thread():
            raise Interrupted(f"stopped waiting for {describe}: the run was interrupted")
        try:
            value = check()
            if value:
                return value
            last = value
        except NotYet as err:
            last = str(err)
        except LabError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure is an observation here
            last = f"{type(err).__name__}: {err}"
        if clock() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.0f}s waiting for {describe}; last seen: {last}",
                hint=hint or None,
            )
        sleep(interval)


SLOW_ERRORS = (requests.exceptions.Timeout, requests.exceptions.ConnectionError)


def retried(call: Callable[[], T], *, describe: str, timeout: float, attempts: int = 2, hint: str = "") -> T:
    """``call()``, tried again when it times out (a slow machine, not a broken one, is the
    usual cause); each attempt may take up to ``timeout`` seconds (the client's own timeout).

    Raises:
        WaitTimeout: naming ``describe``, the attempts and how long they took in all.
    """
    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except SLOW_ERRORS as err:
            if attempt == attempts:
                raise WaitTimeout(
                    f"{describe} did not finish: {attempts} attempts of up to {timeout:.0f} s each "
                    f"({time.monotonic() - started:.0f} s in all); last error: {err}", hint=hint or None) from err
    raise AssertionError("unreachable")
