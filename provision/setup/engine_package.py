"""The Docker engine installed from the distribution's packages where a host lacks it.

Images swarmdeck builds ship the engine; existing hosts (provider ssh) and public boxes
may not. Debian and Ubuntu get ``docker.io`` from their own archive (the host's apt
sources, so an offline mirror works), plus Debian's ``docker-registry`` on the node that
runs the lab registry; other systems get a clear error.
"""

from __future__ import annotations

import shlex

from provision.errors import SetupError
from provision.remote.host import Host, check

ENGINE_PACKAGES = ("docker.io", "apparmor")  # dockerd needs AppArmor's parser where the kernel has AppArmor
REGISTRY_PACKAGE = "docker-registry"
HAS_ENGINE = "command -v dockerd >/dev/null"
HAS_APT = "command -v apt-get >/dev/null"
INSTALL_HINT = "the host needs its package sources (apt) reachable; see the output above"


def ensure_engine_package(host: Host, *, registry: bool = False) -> bool:
    """Install what is missing: the engine, and Debian's registry binary when ``registry``."""
    wanted = []
    if not host.run(HAS_ENGINE).ok:
        wanted += ENGINE_PACKAGES
    if registry and not host.run("test -x /usr/bin/docker-registry").ok:
        wanted.append(REGISTRY_PACKAGE)
    if not wanted:
        return False
    if not host.run(HAS_APT).ok:
        raise SetupError(f"{host.name} has no {' and no '.join(_names(wanted))} and no apt-get to install them",
                         hint="install the Docker engine there yourself (and docker-registry, or set "
                              "registry.image), then run again")
    packages = " ".join(shlex.quote(p) for p in wanted)
    check(host, "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && "
                f"apt-get install -y -qq --no-install-recommends {packages}", hint=INSTALL_HINT)
    if REGISTRY_PACKAGE in wanted:
        # Debian starts the package's own registry service on port 5000; only its binary is wanted
        check(host, "systemctl disable --now docker-registry.service >/dev/null 2>&1 || true")
    return True


def _names(packages: list[str]) -> list[str]:
    return ["Docker engine" if p == "docker.io" else p for p in packages if p != "apparmor"]
