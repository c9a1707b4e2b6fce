"""Progress output: one line per step, with its outcome and duration.

Library code reports through a Reporter; tasks pass a ConsoleReporter and tests
a RecordingReporter. Nothing secret is ever handed to a reporter.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.markup import escape

from provision.errors import redact


class Reporter:
    """Base reporter: prints nothing. Subclasses override ``emit``."""

    def emit(self, kind: str, text: str) -> None:  # kind: step | ok | changed | info | warn | fail
        pass

    def info(self, text: str) -> None:
        self.emit("info", redact(text))

    def warn(self, text: str) -> None:
        self.emit("warn", redact(text))

    def result(self, what: str, changed: bool, seconds: float | None = None) -> None:
        tail = f" ({seconds:.1f}s)" if seconds is not None else ""
        self.emit("changed" if changed else "ok", redact(what) + tail)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """Report the start, the end and the duration of a long step."""
        start = time.monotonic()
        self.emit("step", redact(title) + " ...")
        try:
            yield
        except BaseException:
            self.emit("fail", f"{redact(title)} failed after {time.monotonic() - start:.1f}s")
            raise
        self.emit("done", f"{redact(title)} ({time.monotonic() - start:.1f}s)")


class ConsoleReporter(Reporter):
    """Writes progress to stderr so stdout stays clean for --json and eval."""

    _STYLES = {
        "step": ("•", "cyan"),
        "done": ("✓", "green"),
        "ok": ("  ok", "dim"),
        "changed": ("  changed", "yellow"),
        "info": ("  ", ""),
        "warn": ("! warning:", "bold yellow"),
        "fail": ("✗", "bold red"),
    }

    def __init__(self, console: Console | None = None):
        self.console = console or Console(file=sys.stderr, highlight=False)
        self._lock = threading.Lock()

    def emit(self, kind: str, text: str) -> None:
        mark, style = self._STYLES.get(kind, ("", ""))
        with self._lock:
            line = f"[{style}]{escape(mark)}[/] {escape(text)}" if style else f"{escape(mark)} {escape(text)}"
            self.console.print(line, markup=True, soft_wrap=True)


class RecordingReporter(Reporter):
    """Keeps every line, for tests."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def emit(self, kind: str, text: str) -> None:
        with self._lock:
            self.lines.append((kind, text))

    def kinds(self, kind: str) -> list[str]:
        return [text for k, text in self.lines if k == kind]
