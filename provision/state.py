"""A lab's state folder on this machine, and the locks that keep two runs apart.

``$SWARMDECK_HOME/labs/LAB/`` holds what swarmdeck must remember about a lab between
commands: which provider made it (``provider``), which Docker engine hosts its machines
(``engine.json``: the ``DOCKER_*`` settings in force when it was created, so a shell whose
``DOCKER_HOST`` was pointed at a lab node by ``lab.env`` still finds the right engine),
the lab's current spec (``spec.json``, once lab.add or lab.remove changed its nodes), its
SSH and TLS material (``ssh/``, ``tls/``), demo reports and the visualizer's record.

Changes to a lab (up, down, add, remove) take the lab's lock (``lab.lock``): a second
run waits for the first, naming its pid, or refuses with ``wait=False``. Allocating a
subnet takes a machine-wide lock, so two labs created at once never pick the same one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from provision import hints
from provision.errors import LabError
from provision.paths import home, lab_dir
from provision.spec import load as spec_load

PROVIDER_FILE = "provider"
ENGINE_FILE = "engine.json"
LIBVIRT_URI = "LIBVIRT_URI"  # in engine.json of a libvirt lab made with SWARMDECK_LIBVIRT_URI
ROUTE_FILE = "route"  # how this machine reaches the lab network: direct | tunnel (provision.remote.reach)
TUNNEL_FILE = "tunnel.json"  # the lab's tunnel process, written by it: its pid, the local port of each target
TUNNEL_TARGETS_FILE = "tunnel-targets.json"  # what it should serve, written by those who ask it
PACE_FILE = "pace"
SPEC_FILE = "spec.json"  # the lab's spec now (lab.add and lab.remove change its nodes)
CREATED_SPEC_FILE = "spec-created.json"  # the spec the lab was created with, its subnet as chosen
# where swarmdeck 0.1 kept the created spec, per provider (the docker provider: its network's label)
LEGACY_CREATED_SPEC_FILES = ("libvirt.json", "vagrant.json", "ssh.json")
LOCK_FILE = "lab.lock"
STACKS_DIR = "stacks"  # STACK.yml: a stack's compose file as deployed (rewritten for a lab without mesh)
ROUTES_FILE = "stacks/routes.json"  # {stack: [port, ...]}: ports the lab's load balancer forwards for stacks
LESSON_FILE = "lesson.json"  # the lesson step running now (lesson.run writes it, the visualizer shows it)
DEFAULT_PROVIDER = "docker"  # labs made before the provider was recorded


class LabBusy(LabError):
    """Another swarmdeck run holds the lab's lock."""

    exit_code = 75  # EX_TEMPFAIL: try again later


def write_json(path: Path, data: dict, mode: int = 0o600) -> None:
    """``data`` as indented JSON, written atomically."""
    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode(), mode)


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one,
    never half of it (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def exists(lab: str) -> bool:
    """Whether this machine has a state folder for ``lab`` with a record of its provider."""
    return (lab_dir(lab) / PROVIDER_FILE).is_file()


def known_labs() -> list[str]:
    """Every lab with a state folder on this machine (with its provider's record, or one
    swarmdeck 0.1 wrote)."""
    folder = home() / "labs"
    if not folder.is_dir():
        return []
    return sorted({p.parent.name for name in (PROVIDER_FILE, *LEGACY_CREATED_SPEC_FILES) for p in folder.glob(f"*/{name}")})


def read_provider(lab: str) -> str:
    """The provider that made ``lab``: its record; for a lab of swarmdeck 0.1 without one, the
    provider whose spec file it has; else docker."""
    try:
        return (lab_dir(lab) / PROVIDER_FILE).read_text().strip() or DEFAULT_PROVIDER
    except OSError:
        pass
    legacy = [name for name in LEGACY_CREATED_SPEC_FILES if (lab_dir(lab) / name).is_file()]
    return legacy[0].removesuffix(".json") if legacy else DEFAULT_PROVIDER


def write_provider(lab: str, provider: str) -> None:
    write_atomically(lab_dir(lab) / PROVIDER_FILE, f"{provider}\n".encode(), 0o644)


def read_engine(lab: str) -> dict[str, str] | None:
    """The ``DOCKER_*`` settings of the engine that hosts ``lab`` (None: not recorded)."""
    try:
        data = json.loads((lab_dir(lab) / ENGINE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def write_engine(lab: str, settings: dict[str, str]) -> None:
    write_json(lab_dir(lab) / ENGINE_FILE, settings)


def read_route(lab: str) -> str | None:
    """How this machine reaches ``lab``'s network, as detected once (None: not yet)."""
    try:
        return (lab_dir(lab) / ROUTE_FILE).read_text().strip() or None
    except OSError:
        return None


def write_route(lab: str, route: str) -> None:
    write_atomically(lab_dir(lab) / ROUTE_FILE, f"{route}\n".encode(), 0o644)


def stack_file(lab: str, stack: str) -> Path:
    return lab_dir(lab) / STACKS_DIR / f"{stack}.yml"


def write_stack_file(lab: str, stack: str, text: str) -> Path:
    path = stack_file(lab, stack)
    write_atomically(path, text.encode(), mode=0o644)
    return path


def read_routes(lab: str) -> dict[str, list[int]]:
    """The ports the lab's load balancer forwards for each stack (none recorded: {})."""
    data = read_json(lab_dir(lab) / ROUTES_FILE) or {}
    return {str(k): sorted({int(p) for p in v}) for k, v in data.items() if isinstance(v, list)}


def write_routes(lab: str, stack: str, ports: list[int]) -> bool:
    """Record (or with no ports, forget) ``stack``'s routed ports; True when that changed the record."""
    routes = read_routes(lab)
    before = dict(routes)
    if ports:
        routes[stack] = sorted(set(ports))
    else:
        routes.pop(stack, None)
    if routes == before:
        return False
    write_json(lab_dir(lab) / ROUTES_FILE, routes, mode=0o644)
    return True


def write_lesson(lab: str, step: dict | None) -> None:
    """The lesson step shown by the visualizer; None: no lesson runs."""
    path = lab_dir(lab) / LESSON_FILE
    if step is None:
        path.unlink(missing_ok=True)
    else:
        write_json(path, step, mode=0o644)


def read_lesson(lab: str) -> dict | None:
    return read_json(lab_dir(lab) / LESSON_FILE)


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_tunnel(lab: str) -> dict | None:
    """What ``lab``'s tunnel process recorded: ``pid``, ``ports`` (None: none recorded)."""
    return read_json(lab_dir(lab) / TUNNEL_FILE)


def write_tunnel(lab: str, record: dict) -> None:
    write_json(lab_dir(lab) / TUNNEL_FILE, record)


def read_tunnel_targets(lab: str) -> dict:
    """What ``lab``'s tunnel should serve: ``targets`` (ADDRESS:PORT), ``wanted`` (their former ports)."""
    return read_json(lab_dir(lab) / TUNNEL_TARGETS_FILE) or {}


def write_tunnel_targets(lab: str, record: dict) -> None:
    write_json(lab_dir(lab) / TUNNEL_TARGETS_FILE, record)


def remove_tunnel_record(lab: str) -> None:
    (lab_dir(lab) / TUNNEL_FILE).unlink(missing_ok=True)


def remove_tunnel(lab: str) -> None:
    for name in (TUNNEL_FILE, TUNNEL_TARGETS_FILE):
        (lab_dir(lab) / name).unlink(missing_ok=True)


def tunnel_lock(lab: str):
    """The lock held while a lab's tunnel process is started or stopped (not the lab lock:
    a running lab.up starts it too)."""
    return locked(lab_dir(lab) / "tunnel.lock", f"the tunnel of lab {lab}")


def read_pace(lab: str) -> float:
    """How many times slower than container nodes the lab's engines answered when it was
    made (1.0 when not measured); see LabPlan.pace."""
    try:
        return max(1.0, float((lab_dir(lab) / PACE_FILE).read_text()))
    except (OSError, ValueError):
        return 1.0


def write_pace(lab: str, pace: float) -> None:
    write_atomically(lab_dir(lab) / PACE_FILE, f"{pace:.1f}\n".encode(), 0o644)


def read_created_spec(lab: str):
    """The spec lab ``lab`` was created with (None: none recorded on this machine)."""
    folder = lab_dir(lab)
    for name in (CREATED_SPEC_FILE, *LEGACY_CREATED_SPEC_FILES):
        found = spec_load.read_spec_json(folder / name)
        if found is not None:
            return found
    return None


def write_created_spec(spec) -> None:
    """Record the spec a lab is created with, once (a re-run or lab.add keeps the first)."""
    if read_created_spec(spec.name) is None:
        spec_load.write_spec_json(spec, lab_dir(spec.name) / CREATED_SPEC_FILE)


def read_current_spec(lab: str):
    """The lab's spec as lab.add or lab.remove left it (None: its nodes never changed)."""
    return spec_load.read_spec_json(lab_dir(lab) / SPEC_FILE)


def write_current_spec(spec) -> None:
    spec_load.write_spec_json(spec, lab_dir(spec.name) / SPEC_FILE)


def current_spec(lab: str, created):
    """The lab's spec now: as lab.add or lab.remove left it, else ``created`` (the spec it
    was created with, as its backend found it; None: no such lab)."""
    if created is None:
        return None
    return read_current_spec(lab) or created


def remove(lab: str) -> bool:
    """Empty the lab's state folder (keys, certificates, records, reports); True if it held
    anything (a folder with only its lock file in it is no lab: ``lab.down`` says so). The
    lock file stays until its holder lets go of it (then ``tidy``)."""
    entries = _records(lab)
    for entry in entries:
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    return bool(entries)


def is_empty(lab: str) -> bool:
    """Whether the lab's state folder holds nothing yet but its lock (a run that finds it so
    is the one that creates the lab's state, and removes it when it rolls back)."""
    return not _records(lab)


def _records(lab: str) -> list[Path]:
    try:
        return [entry for entry in lab_dir(lab).iterdir() if entry.name != LOCK_FILE]
    except OSError:
        return []


@contextmanager
def locked(path: Path, what: str, *, wait: bool = True, on_wait: Callable[[str], None] | None = None,
           hint: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (made if missing) for the block.

    The lock file names its holder (pid and command). When another process holds it,
    ``on_wait`` is told who, and the call blocks until it is free; with ``wait=False``
    it raises LabBusy instead. A lock file removed by its holder (``lab.down``) is not
    trusted: the lock is taken again on the file now at ``path``.
    """
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue  # ``tidy`` removed the folder between the two calls: make it again
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                os.close(handle)
                raise LabBusy(f"{what} is busy: {holder} holds its lock", hint=hint) from None
            if on_wait:
                on_wait(f"{what} is busy: {holder} holds its lock; waiting for it to finish (Ctrl-C to stop)")
            fcntl.flock(handle, fcntl.LOCK_EX)
        if _same_file(handle, path):
            break
        os.close(handle)  # the holder removed the file while we waited: lock the new one
    try:
        os.ftruncate(handle, 0)
        os.write(handle, f"pid {os.getpid()} ({_command()})\n".encode())
        yield
    finally:
        if _same_file(handle, path):
            os.ftruncate(handle, 0)
        os.close(handle)


def lab_lock(lab: str, *, wait: bool = True, on_wait: Callable[[str], None] | None = None,
             hint: str | None = None):
    """The lock a change to ``lab`` (up, down, add, remove) holds for its whole run."""
    return locked(lab_dir(lab) / LOCK_FILE, f"lab {lab}", wait=wait, on_wait=on_wait, hint=hint)


def machine_lock(name: str, *, on_wait: Callable[[str], None] | None = None):
    """A lock shared by every lab on this machine (``subnets``: choosing a lab network)."""
    return locked(home() / "locks" / f"{name}.lock", f"this machine's {name}", on_wait=on_wait)


def tidy(lab: str) -> None:
    """Remove the lab's folder when nothing but an unheld lock file is left in it."""
    folder = lab_dir(lab)
    try:
        entries = [e.name for e in folder.iterdir()]
    except OSError:
        return
    if entries in ([], [LOCK_FILE]):
        try:
            with locked(folder / LOCK_FILE, f"lab {lab}", wait=False):
                (folder / LOCK_FILE).unlink(missing_ok=True)
            folder.rmdir()
        except (LabBusy, OSError):
            pass  # someone took the lock, or wrote something, meanwhile: the folder is theirs


def _same_file(handle: int, path: Path) -> bool:
    try:
        return os.fstat(handle).st_ino == path.stat().st_ino
    except OSError:
        return False


def _holder(path: Path) -> str:
    for _ in range(5):  # the holder writes its name right after taking the lock
        try:
            text = path.read_text().strip()
        except OSError:
            text = ""
        if text:
            return text
        time.sleep(0.1)
    return "another swarmdeck process"


def _command() -> str:
    words = [Path(sys.argv[0]).name if sys.argv else "swarmdeck", *sys.argv[1:]]
    return " ".join(words)[:120]


@contextmanager
def lab_change(lab: str, task: str, reporter, *, wait: bool = True, args: tuple[str, ...] = ()
               ) -> Iterator[None]:
    """Hold ``lab``'s lock for a whole ``task`` (lab.up, lab.down, lab.add, lab.remove).

    A second run of any of them waits, told through ``reporter`` which pid holds the lab,
    or with ``wait=False`` refuses at once (state.LabBusy, exit code 75). Afterwards a
    state folder left with nothing but its lock (a lab removed, a run that made nothing)
    is tidied away.
    """
    hint = (f"wait for it to finish, then run {hints.command(task, *args, lab=lab)} again "
            "(without --no-wait it waits by itself)")
    try:
        with lab_lock(lab, wait=wait, on_wait=reporter.info, hint=hint):
            yield
    finally:
        tidy(lab)
