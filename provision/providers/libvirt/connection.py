"""libvirt-python, imported only when a libvirt or Vagrant lab needs it."""

from __future__ import annotations

from provision.errors import ProviderUnavailable

URI_ENV = "SWARMDECK_LIBVIRT_URI"


def libvirt_api():
    try:
        import libvirt  # noqa: PLC0415 - optional dependency, imported when used
    except ImportError as err:
        raise ProviderUnavailable(
            "the libvirt provider needs libvirt-python",
            hint="`pip install -e '.[libvirt]'` (it builds against libvirt-dev and pkg-config from Debian)") from err
    libvirt.registerErrorHandler(lambda _context, _error: None, None)  # errors are raised, not printed too
    return libvirt


def delete_volume(pool, name: str) -> bool:
    """Delete the pool's volume ``name``; False when there is none."""
    try:
        pool.storageVolLookupByName(name).delete(0)
        return True
    except libvirt_api().libvirtError:
        return False
