"""Provider registry. Backends are imported lazily so that libvirt-python and
python-vagrant are needed only by those who use them."""

from __future__ import annotations

import importlib

from provision.errors import ProviderUnavailable
from provision.providers.base import Provider

REGISTRY = {
    "docker": "provision.providers.docker.provider:DockerProvider",
    "libvirt": "provision.providers.libvirt.provider:LibvirtProvider",
    "ssh": "provision.providers.ssh.provider:SSHProvider",
    "vagrant": "provision.providers.vagrant.provider:VagrantProvider",
}


def get_provider(name: str, lab: str | None = None) -> Provider:
    """An instance of the provider called ``name``, for ``lab`` when given (the docker
    provider then talks to the engine that hosts that lab).

    Raises:
        ProviderUnavailable: for a provider this version does not ship yet.
    """
    if name not in REGISTRY:
        raise ProviderUnavailable(
            f"provider {name!r} is not available in this version (available: {', '.join(REGISTRY)})",
            hint="use --provider docker",
        )
    module_name, _, class_name = REGISTRY[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)(lab=lab)
