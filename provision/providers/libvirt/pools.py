"""The libvirt storage pool ``swarmdeck`` (``/var/lib/libvirt/images/swarmdeck``) that holds the
VM image and every node's disks: files are uploaded through libvirt, so QEMU never reads
the user's home folder."""

from __future__ import annotations

from pathlib import Path

from provision.providers.libvirt.connection import libvirt_api
from provision.render import render

POOL = "swarmdeck"
POOL_PATH = "/var/lib/libvirt/images/swarmdeck"


def ensure_pool(conn):
    """The swarmdeck pool, defined, built and started where it is missing."""
    libvirt = libvirt_api()
    try:
        pool = conn.storagePoolLookupByName(POOL)
    except libvirt.libvirtError:
        pool = conn.storagePoolDefineXML(render("libvirt/pool.xml.j2", name=POOL, path=POOL_PATH))
        pool.build(0)
        pool.setAutostart(True)
    if not pool.isActive():
        pool.create(0)
    pool.refresh(0)
    return pool


def upload(conn, pool, name: str, path: Path, fmt: str):
    """(the pool's volume ``name`` with the content of ``path``, whether it was uploaded now)."""
    libvirt = libvirt_api()
    try:
        return pool.storageVolLookupByName(name), False
    except libvirt.libvirtError:
        pass
    size = path.stat().st_size
    volume = pool.createXML(render("libvirt/volume.xml.j2", name=name, capacity=size, format=fmt, backing=None), 0)
    stream = conn.newStream(0)
    volume.upload(stream, 0, size, 0)
    with path.open("rb") as source:
        stream.sendAll(lambda _stream, nbytes, handle: handle.read(nbytes), source)
    stream.finish()
    return volume, True
