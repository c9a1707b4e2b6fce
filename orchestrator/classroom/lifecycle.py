"""The class use cases: class.up, class.status, class.reset, class.down (tasks.py calls these).

A class is N labs made from one template spec, one per student (roster.py), each placed wholly on
one host (placement.py), made in parallel with a bound sized to the machine, each then given its
SSH door (door.py) and its snapshot (snapshot.py). A lab that fails is tried once more, then
reported; the others stay up. The class's records are in ``$SWARMDECK_HOME/classes/NAME/``."""

from __future__ import annotations

import dataclasses
import os
import secrets as random_secrets
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import docker.errors
import requests

from orchestrator import create
from orchestrator import usecases as labs
from orchestrator.classroom import baseline, door, placement, records, snapshot
from orchestrator.classroom import hosts as inventories
from orchestrator.classroom import roster as rosters
from orchestrator.classroom.display import ClassDisplay, LabLine
from orchestrator.clients import ClientPool
from orchestrator.views import LabStatus
from provision import inventory, machines, state
from provision.errors import LabError, PartialFailure, UsageError
from provision.images import node as images
from provision.parallel import fan_out
from provision.paths import lab_dir
from provision.progress import Reporter
from provision.providers.docker import names
from provision.remote.engine_clients import engine_client, host_client
from provision.setup.hosts_file import ensure_hosts_block
from provision.spec import load as spec_load
from provision.spec import validation
from provision.spec.model import LabSpec, LimitsSpec
from provision.wait import wait_until

# Each node of a class lab, unless the template says otherwise: a five-node lab is then 5 x 192 MiB
# + its door and load balancer = 996 MiB, and 20 of them 19.5 GiB of memory limits, within 24 GB
# with 2 GiB left to the host (placement.py); an idle node uses about 60 MB. A node may take one
# core at most and 1024 processes (a fork bomb stops there).
CLASS_LIMITS = LimitsSpec(memory="192m", cpus=1.0, pids=1024)
SECRET_BYTES = 16  # 128 bits
ERRORS = (LabError, docker.errors.DockerException, requests.RequestException)


@dataclass(frozen=True)
class ClassOptions:
    students: int | None = None
    roster: str | None = None
    address: str = ""  # where students reach the doors ("": this machine's address, found)
    bind: str = "0.0.0.0"  # where the doors listen on this machine
    parallel: int = 0  # labs made at once (0: sized to the machine)
    hosts: str | None = None  # a hosts inventory file (hosts.py); None: the class's recorded one, else local
    up: create.UpOptions = create.UpOptions()


@dataclass
class ClassResult:
    record: records.ClassRecord
    failed: dict[str, str]  # lab -> error
    seconds: float


def with_class_limits(spec: LabSpec) -> LabSpec:
    """The template with CLASS_LIMITS for each limit it leaves unset."""
    limits = spec.limits
    return dataclasses.replace(spec, limits=LimitsSpec(
        memory=limits.memory or CLASS_LIMITS.memory, cpus=limits.cpus or CLASS_LIMITS.cpus,
        pids=limits.pids or CLASS_LIMITS.pids))


def lab_spec(template: LabSpec, lab: str) -> LabSpec:
    return dataclasses.replace(template, name=lab)


def class_hosts(record: records.ClassRecord, path: str | None) -> list[placement.ClassHost]:
    """Where the class's labs may live: the inventory in ``path``, else the one the class was
    given before, else the local engine. A lab already made stays on its host, which the
    inventory must therefore still name."""
    if path:
        chosen = inventories.read(path)
    elif record.hosts:
        chosen = inventories.from_records(record.hosts)
    else:
        chosen = [placement.local_host()]
    named = {h.name for h in chosen}
    stranded = sorted({s.host for s in record.seats if _made(s) and s.host not in named})
    if stranded:
        raise UsageError(f"class {record.name} has labs on host(s) {', '.join(stranded)}, which the hosts inventory "
                         "leaves out", hint="keep those hosts in the file, or class.down the class first")
    return chosen


def parallel_bound(need_mb: int) -> int:
    """Labs made at once: two per core (a lab.up mostly waits on engines and SSH), at most 8,
    and no more than the memory this machine has available holds."""
    available = _available_mb()
    by_memory = max(1, available // max(1, need_mb)) if available else 8
    return max(1, min(2 * (os.cpu_count() or 1), 8, by_memory))


def _available_mb() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def this_address() -> str:
    """This machine's address on its default route (no packet is sent), else 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _lock(name: str, reporter: Reporter):
    return state.locked(records.class_dir(name) / "class.lock", f"class {name}", on_wait=reporter.info)


def students_wanted(name: str, options: ClassOptions) -> list[rosters.Student]:
    if options.roster:
        return rosters.from_roster(name, rosters.read_roster(options.roster))
    if options.students is None or options.students < 1:
        raise UsageError("class.up needs --students N (1 or more) or --roster FILE", hint="e.g. --students 20")
    return rosters.counted(name, options.students)


def _seats(record: records.ClassRecord, wanted: list[rosters.Student]) -> list[records.Seat]:
    existing = [rosters.Student(s.id, s.name, s.lab) for s in record.seats]
    students = rosters.grown(existing, wanted, record.name)
    seats = {s.lab: s for s in record.seats}
    for student in students:
        seats.setdefault(student.lab, records.Seat(student.id, student.name, student.lab))
    return [seats[s.lab] for s in students]


def _made(seat: records.Seat) -> bool:
    """Whether the seat's lab exists (finished, or made and not yet given its door or snapshot):
    it then stays on its host."""
    return seat.snapshot or lab_dir(seat.lab).exists()


def _door_ports(seats: list[records.Seat], by_name: dict[str, placement.ClassHost], bind: str) -> None:
    """A door port for each seat without one, free on the seat's host."""
    for host_name in sorted({s.host for s in seats if not s.door_port}):
        host = by_name[host_name]
        taken = {s.door_port for s in seats if s.host == host_name and s.door_port}
        client = engine_client(host.engine) if host.engine else host_client()
        try:
            for seat in (s for s in seats if s.host == host_name and not s.door_port):
                # this machine's sockets say nothing of a remote host's: its engine's containers do
                seat.door_port = door.free_port(client, taken, bind, probe_here=host.engine is None)
                taken.add(seat.door_port)
        finally:
            client.close()


def up(name: str, template: LabSpec, options: ClassOptions, reporter: Reporter, display_console=None) -> ClassResult:
    """Make (or complete) the class's labs; safe to re-run; a larger count adds labs."""
    rosters.check_class_name(name)
    started = time.monotonic()
    with _lock(name, reporter):
        record = records.read(name)
        template = with_class_limits(template)
        if record is not None:  # the class keeps the template it was made with
            given = {**spec_load.to_mapping(template), "name": record.spec["name"]}
            if given != record.spec:
                reporter.warn(f"class {name} keeps the lab spec it was made with; this one differs and is not used "
                              "(class.down, then class.up, to change it)")
            template = spec_load.from_mapping(record.spec)
        validation.validate(lab_spec(template, rosters.counted(name, 1)[0].lab))  # every spec problem, now
        record = record or records.ClassRecord(name, spec_load.to_mapping(template))
        record.address = options.address or record.address or this_address()
        local = host_client()
        record.seats = _seats(record, students_wanted(name, options))
        inventory = class_hosts(record, options.hosts)
        record.hosts = inventories.to_records(inventory)
        hosts_by_name = {h.name: h for h in inventory}
        need = placement.lab_memory_mb(template)
        where = placement.place([s.lab for s in record.seats], need, inventory,
                                {s.lab: s.host for s in record.seats if _made(s)})
        for seat in record.seats:
            if seat.host != where[seat.lab].name:
                seat.host, seat.door_port = where[seat.lab].name, 0
        _door_ports(record.seats, hosts_by_name, options.bind)
        secrets = records.read_secrets(name)
        for seat in record.seats:
            secrets.setdefault(seat.lab, random_secrets.token_urlsafe(SECRET_BYTES))
        records.write_secrets(name, secrets)
        records.write(record)
        image = images.ensure_node_image(local, reporter, method=options.up.image_method, mirror=options.up.mirror)
        bound = options.parallel or parallel_bound(need)
        reporter.info(f"class {name}: {len(record.seats)} labs of {len(template.nodes)} nodes, {bound} at once "
                      f"(each node: memory {template.limits.memory}, cpus {template.limits.cpus:g}, "
                      f"pids {template.limits.pids})")
        display = ClassDisplay([s.lab for s in record.seats], {s.lab: s.host for s in record.seats}, display_console)

        def make(seat: records.Seat) -> str | None:
            return _make_lab(seat, lab_spec(template, seat.lab), hosts_by_name[seat.host], secrets[seat.lab],
                             record.name, options, image, display)

        with display, ThreadPoolExecutor(max_workers=bound) as pool:
            outcomes = dict(zip([s.lab for s in record.seats], pool.map(make, record.seats)))
        failed = {lab: error for lab, error in outcomes.items() if error}
        for seat in record.seats:
            if seat.lab not in failed and not seat.snapshot:
                seat.snapshot, seat.changed = True, records.now()
        records.write(record)
        return ClassResult(record, failed, time.monotonic() - started)


def _make_lab(seat: records.Seat, spec: LabSpec, host: placement.ClassHost, secret: str, class_name: str,
              options: ClassOptions, image: str, display: ClassDisplay) -> str | None:
    """lab.up, the door and the snapshot of one lab, tried twice; the error text, or None."""
    error = ""
    for attempt in (1, 2):
        line = LabLine(display, seat.lab)
        display.set(seat.lab, state="working", note="" if attempt == 1 else f"retrying: {error[:60]}")
        try:
            create.up(spec, line, dataclasses.replace(options.up, engine=host.engine))
            line.emit("step", "door and snapshot")
            _, plan = inventory.existing_lab(seat.lab)
            client = host_client(seat.lab)
            try:
                if door.ensure(client, image, plan, secret, seat.door_port, options.bind):
                    line.changes.append("door")
                folder = records.snapshot_dir(class_name, seat.lab)
                if not snapshot.exists(client, plan, folder):
                    with ClientPool(plan) as clients:
                        baseline.record(clients, plan, folder)  # before the nodes are frozen
                    snapshot.take(client, image, plan, folder)
                    line.changes.append("snapshot")
            finally:
                client.close()
            changed = f"{len(line.changes)} changes" if line.changes else "unchanged"
            display.set(seat.lab, phase="ready", state="ready", note=f"door :{seat.door_port}, {changed}")
            return None
        except ERRORS as err:
            error = _first_line(err)
    display.set(seat.lab, state="failed", note=error[:80])
    return error


# -- status ------------------------------------------------------------------------------------


def status(name: str) -> dict:
    """Every lab of the class: host, nodes ready/total, leader, services, limits and use, last change."""
    record = _record(name)
    rows = fan_out(record.seats, lambda seat: _lab_row(record, seat), name=lambda s: s.lab, what="class status")
    return {"class": name, "address": record.address, "limits": record.spec.get("limits", {}),
            "labs": [rows[s.lab] for s in record.seats]}


def _record(name: str) -> records.ClassRecord:
    record = records.read(name)
    if record is None:
        known = ", ".join(records.known_classes()) or "none"
        raise UsageError(f"no class named {name} on this machine (classes here: {known})",
                         hint="class.up --students N --class NAME makes one")
    return record


def _lab_row(record: records.ClassRecord, seat: records.Seat) -> dict:
    door_at = f"{records.door_address(record, seat)}:{seat.door_port}"
    row = {"lab": seat.lab, "student": seat.name, "host": seat.host, "door": door_at,
           "nodes_ready": 0, "nodes_total": 0, "leader": None, "services": None, "state": "missing",
           "last_change": seat.changed, "nodes": []}
    try:
        lab_state = labs.status(seat.lab)
    except ERRORS as err:
        return {**row, "error": str(err).splitlines()[0]}
    row.update(nodes_ready=sum(n.ready for n in lab_state.nodes), nodes_total=len(lab_state.nodes),
               leader=next((n.name for n in lab_state.nodes if n.leader), None), state=lab_state.state,
               services=_services(seat.lab, lab_state))
    row["nodes"] = _usage(seat.lab)
    return row


def _services(lab: str, lab_state: LabStatus) -> int | None:
    leader = next((n.name for n in lab_state.nodes if n.leader), None)
    if leader is None:
        return None
    _, plan = inventory.existing_lab(lab)
    with ClientPool(plan, timeout=5) as clients:
        try:
            return len(clients[leader].services.list())
        except ERRORS:
            return None


def _usage(lab: str) -> list[dict]:
    """Each node container's use against its limits (one ``docker stats`` sample per node)."""
    client = host_client(lab)
    try:
        containers = client.containers.list(filters=names.lab_filter(lab, "node"))
        return sorted(fan_out(containers, _node_usage, name=lambda c: c.name, what="docker stats").values(),
                      key=lambda u: u["node"])
    finally:
        client.close()


def _node_usage(container) -> dict:
    stats = container.stats(stream=False)
    memory = stats.get("memory_stats") or {}
    cache = (memory.get("stats") or {}).get("cache", 0)
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    used = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get("total_usage", 0)
    system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    host = container.attrs["HostConfig"]
    return {
        "node": container.labels.get("io.swarmdeck.node", container.name),
        "memory_mb": round((memory.get("usage", 0) - cache) / 2 ** 20, 1),
        "memory_limit_mb": round(host.get("Memory", 0) / 2 ** 20) or None,
        "cpu_percent": round(100 * used / system * (cpu.get("online_cpus") or 1), 1) if system > 0 else 0.0,
        "cpus_limit": (host.get("NanoCpus") or 0) / 1e9 or None,
        "pids": (stats.get("pids_stats") or {}).get("current", 0),
        "pids_limit": host.get("PidsLimit") or None,
    }


# -- reset -------------------------------------------------------------------------------------


def reset(name: str, student: str | None, reporter: Reporter) -> dict[str, float]:
    """Put labs back as class.up left them (every lab with ``student=None``); seconds per lab."""
    record = _record(name)
    if student is None:
        chosen = list(record.seats)
    else:
        seat = record.seat(student)
        if seat is None:
            raise UsageError(f"class {name} has no student {student!r}",
                             hint=f"its students: {', '.join(s.id for s in record.seats[:10])}")
        chosen = [seat]
    missing = [s.lab for s in chosen if not s.snapshot]
    if missing:
        raise LabError(f"no snapshot of {', '.join(missing)}: class.up did not finish them",
                       hint=f"run class.up --class {name} again first")
    image = images.node_image_tag()  # the helper that copies the snapshots back
    times = fan_out(chosen, lambda s: _reset_lab(record, s, image, reporter), name=lambda s: s.lab, what="class.reset",
                    workers=parallel_bound(placement.lab_memory_mb(spec_load.from_mapping(record.spec))))
    with _lock(name, reporter):
        fresh = records.read(name) or record
        for seat in fresh.seats:
            if seat.lab in times:
                seat.changed = records.now()
        records.write(fresh)
    return times


def _reset_lab(record: records.ClassRecord, seat: records.Seat, image: str, reporter: Reporter) -> float:
    """The lab put back in place when its swarm is whole (baseline.py: seconds), else restored
    from its snapshot (snapshot.py: the managers restart and elect a leader)."""
    start = time.monotonic()
    with state.lab_change(seat.lab, "class.reset", reporter):
        provider, plan = inventory.existing_lab(seat.lab)
        client = host_client(seat.lab)
        try:
            folder = records.snapshot_dir(record.name, seat.lab)
            if not snapshot.exists(client, plan, folder):
                raise LabError(f"the snapshot of lab {seat.lab} is gone", hint=f"class.up --class {record.name}")
            why = _in_place(client, provider.list(plan.name), plan, folder)
            if why is None:
                seconds = time.monotonic() - start
                reporter.result(f"lab {seat.lab} reset in place (its swarm was whole)", True, seconds)
                return seconds
            reporter.info(f"lab {seat.lab}: {why}; restoring its snapshot")
            snapshot.restore(client, image, plan, folder)
        finally:
            client.close()
        # the /etc/hosts block (a container's /etc/hosts is made anew at each start) is written over
        # SSH while the swarm comes back: the two take about as long, so they overlap
        with ThreadPoolExecutor(max_workers=1) as pool:
            hosts_done = pool.submit(_hosts_blocks, provider, plan)
            wait_until(lambda: labs.status(seat.lab).healthy, timeout=plan.scaled(90),
                       describe=f"every node of lab {seat.lab} Ready after the restore",
                       hint=f"swarmdeck lab.status --lab {seat.lab}", interval=0.3)
            hosts_done.result()
    seconds = time.monotonic() - start
    reporter.result(f"lab {seat.lab} reset", True, seconds)
    return seconds


def _in_place(client, machines, plan, folder) -> str | None:
    """baseline.restore_in_place; an engine error on the way is a reason to restore the snapshot."""
    with ClientPool(plan, timeout=10) as clients:
        try:
            return baseline.restore_in_place(clients, client, machines, plan, folder)
        except ERRORS as err:
            return f"putting it back in place failed ({_first_line(err)})"


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _hosts_blocks(provider, plan) -> None:
    hosts = machines.open_hosts(plan, provider, provider.list(plan.name))
    try:
        addresses = {n.name: n.address for n in plan.nodes}
        fan_out(plan.nodes, lambda n: ensure_hosts_block(hosts[n.name], plan.name, addresses),
                name=lambda n: n.name, what=f"/etc/hosts of lab {plan.name}'s nodes after the restore")
    finally:
        machines.close_hosts(hosts)


# -- down --------------------------------------------------------------------------------------


def down(name: str, reporter: Reporter) -> dict[str, dict[str, int]]:
    """Remove every lab of the class and its records; nothing else. A lab that cannot be
    removed (its host does not answer) is reported; the class's records then stay for it."""
    record = _record(name)
    with _lock(name, reporter):
        try:
            removed = fan_out(record.seats, lambda s: labs.down(s.lab, reporter), name=lambda s: s.lab,
                              what=f"class.down of {name}", workers=4)
        except PartialFailure as failure:
            record.seats = [s for s in record.seats if s.lab in failure.failures]
            records.write(record)
            raise
    records.remove(name)
    return removed
