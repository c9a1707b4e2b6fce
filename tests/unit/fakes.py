"""A scripted Host for setup-step tests: files in a dict, commands answered by rules."""

from __future__ import annotations

import re
import shlex

from provision.remote.host import Result


class FakeHost:
    def __init__(self, name="node1", files=None, responses=None):
        self.name = name
        self.files: dict[str, str] = dict(files or {})
        self.responses: list[tuple[str, Result]] = list((responses or {}).items())
        self.commands: list[str] = []

    def run(self, command: str) -> Result:
        self.commands.append(command)
        for pattern, result in self.responses:
            if re.search(pattern, command):
                return result
        match = re.fullmatch(r"cat (\S+) 2>/dev/null", command)
        if match:
            path = shlex.split(match.group(1))[0]
            return Result(self.files[path], 0) if path in self.files else Result("", 1)
        match = re.match(r"cat (\S+) > (\S+)", command)
        if match:
            self.files[match.group(2)] = self.files[match.group(1)]
        return Result("", 0)

    def put(self, content: bytes, path: str, mode: int = 0o644) -> None:
        self.files[path] = content.decode()

    def close(self) -> None:
        pass

    def ran(self, fragment: str) -> bool:
        return any(fragment in c for c in self.commands)
