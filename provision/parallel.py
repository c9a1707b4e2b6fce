"""The one way swarmdeck works on several nodes at once: every node is attempted, and a
failure names every node that failed with its own error (not just the first)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

from provision.errors import PartialFailure

Item = TypeVar("Item")
Result = TypeVar("Result")
MAX_WORKERS = 16


def fan_out(items: Iterable[Item], action: Callable[[Item], Result], *, name: Callable[[Item], str],
            what: str, workers: int = MAX_WORKERS) -> dict[str, Result]:
    """``{name(item): action(item)}`` for every item, run in parallel (at most ``workers`` at once).

    Raises:
        PartialFailure: naming each item that failed and its error, once all have finished.
        BaseException: an interrupt (Ctrl-C) raised in an action, as it is.
    """
    chosen = list(items)
    results: dict[str, Result] = {}
    failures: dict[str, BaseException] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chosen)))) as pool:
        futures = {name(item): pool.submit(action, item) for item in chosen}
    for key, future in futures.items():
        error = future.exception()
        if error is None:
            results[key] = future.result()
        elif isinstance(error, Exception):
            failures[key] = error
        else:
            raise error
    if failures:
        raise PartialFailure(what, failures)
    return results
