"""How node containers must run on this Docker engine: detected, never assumed.

Docker-in-Docker needs broad rights. ``--privileged`` is the normal way; some
hosts deny a capability (here CAP_SYS_RESOURCE: "unable to apply caps"), and
there a restricted profile works: every capability but the denied one,
unconfined seccomp/AppArmor/system paths, all devices, and a writable cgroup
tree. The result is cached per engine in ``$SWARMDECK_HOME/runtime.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from provision.errors import ProviderUnavailable
from provision.paths import ensure_private_dir, home

PRIVILEGED, RESTRICTED = "privileged", "restricted"


@dataclass(frozen=True)
class RuntimeProfile:
    name: str  # privileged | restricted
    cgroup_version: str  # "1" | "2"

    def host_config_options(self) -> dict[str, Any]:
        """Keyword arguments for ``APIClient.create_host_config`` of a node."""
        options: dict[str, Any] = {"binds": {"/lib/modules": {"bind": "/lib/modules", "mode": "ro"}}}
        if self.cgroup_version == "2":
            options["cgroupns"] = "private"  # the node gets its own cgroup root (kind does the same)
        if self.name == PRIVILEGED:
            options["privileged"] = True
            return options
        options.update(
            cap_add=["ALL"],
            cap_drop=["SYS_RESOURCE"],  # the capability this engine may not grant
            security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            device_cgroup_rules=["a *:* rwm"],  # the nested engine creates device nodes
        )
        if self.cgroup_version == "1":
            options["binds"]["/sys/fs/cgroup"] = {"bind": "/sys/fs/cgroup", "mode": "rw"}
        return options

    def host_config(self, api: docker.APIClient, extra_binds: dict | None = None, **more: Any) -> dict[str, Any]:
        """The HostConfig of a node container under this profile."""
        options = self.host_config_options()
        options["binds"].update(extra_binds or {})
        config = api.create_host_config(**options, **more)
        if self.name == RESTRICTED:
            # What the CLI's `--security-opt systempaths=unconfined` sends: no masked or
            # read-only /proc and /sys paths, which the nested engine needs.
            config["MaskedPaths"], config["ReadonlyPaths"] = [], []
        return config


def profile_for(client: docker.DockerClient, image: str) -> RuntimeProfile:
    """The cached profile for this engine, detected with ``image`` on first use."""
    info = client.info()
    cgroup = str(info.get("CgroupVersion") or "1")
    key = f"{info.get('ID')}:{info.get('ServerVersion')}:{cgroup}"
    cache = home() / "runtime.json"
    known = _read(cache)
    if key in known:
        return RuntimeProfile(known[key], cgroup)
    profile = detect(client, image, cgroup)
    known[key] = profile.name
    ensure_private_dir(cache.parent)
    cache.write_text(json.dumps(known, indent=2))
    return profile


def detect(client: docker.DockerClient, image: str, cgroup: str) -> RuntimeProfile:
    """Try privileged, then restricted, by running ``true`` in ``image``."""
    errors = []
    for name in (PRIVILEGED, RESTRICTED):
        profile = RuntimeProfile(name, cgroup)
        try:
            _probe(client.api, image, profile)
            return profile
        except docker.errors.APIError as err:
            errors.append(f"{name}: {err.explanation or err}")
    raise ProviderUnavailable(
        "this Docker engine cannot run Docker-in-Docker nodes: " + "; ".join(errors),
        hint="run swarmdeck on a host where containers may use --privileged, or use the libvirt provider",
    )


def _probe(api: docker.APIClient, image: str, profile: RuntimeProfile) -> None:
    container = api.create_container(image, ["true"], entrypoint=[], host_config=profile.host_config(api),
                                     labels={"io.swarmdeck.kind": "probe"})
    try:
        api.start(container["Id"])
        api.wait(container["Id"], timeout=60)
    finally:
        api.remove_container(container["Id"], force=True)


def _read(path) -> dict[str, str]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
