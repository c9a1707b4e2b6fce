"""`image.prune`: images of older recipes, which nothing uses any more.

Each change of the VM recipe makes a new image folder (about 0.7 GB), its copy in the
libvirt pool, and a Vagrant box that Vagrant and vagrant-libvirt each keep a copy of; each
change of the node image's or a tutorial stand-in's recipe makes a new image on the host
engine (``swarmdeck/node:HASH``, ``swarmdeck/stand-in/NAME:HASH``). Only those whose recipe
is not the current one are removed, never a volume that a domain of some lab still uses,
and never an image a container uses (the engine refuses, and it is kept).
"""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import docker
import docker.errors

from provision.images import node as node_images
from provision.images import tutorial
from provision.images import vm as vm_images
from provision.paths import home
from provision.providers.libvirt import provider as lv
from provision.providers.vagrant.commands import box_command

OLD_IMAGE = re.compile(r"vm-[0-9a-f]{12}")


OLD_ENGINE_IMAGE = re.compile(rf"({re.escape(node_images.REPOSITORY)}|{re.escape(tutorial.LOCAL)}/[a-z0-9-]+)"
                              r":([0-9a-f]{12})")


def prune(client: docker.DockerClient | None = None, *, dry_run: bool = False) -> list[str]:
    """Remove (or, with ``dry_run``, list) the old artefacts; returns what they are. With
    ``client`` (the host engine), also its old node and stand-in images."""
    current = vm_images.vm_image().name
    found = _image_folders(current, dry_run) + _vagrant_boxes(current, dry_run)
    found += _pool_volumes(current, dry_run)
    return found + (_engine_images(client, dry_run) if client is not None else [])


def current_engine_tags() -> set[str]:
    """The node image's and every stand-in's tag for the recipes in this checkout."""
    return {node_images.node_image_tag(), *(tutorial.local_tag(s) for s in tutorial.STAND_INS)}


def _engine_images(client: docker.DockerClient, dry_run: bool) -> list[str]:
    keep = current_engine_tags()
    old = sorted({tag for image in client.images.list() for tag in image.tags
                  if OLD_ENGINE_IMAGE.fullmatch(tag) and tag not in keep})
    used = {c.attrs["Image"] for c in client.containers.list(all=True, ignore_removed=True)} if old else set()
    removed = []
    for tag in old:
        image = client.images.get(tag)
        if image.id in used and len(image.tags) == 1:
            continue  # its last name, and a container runs (or could restart) from it: kept
        if not dry_run:
            try:
                client.images.remove(tag)  # untags it; its layers go when no other tag holds them
            except docker.errors.APIError:  # a container made from it since the listing
                continue
        removed.append(f"image {tag}")
    return removed


def _image_folders(current: str, dry_run: bool) -> list[str]:
    folder = home() / "images"
    old = [p for p in folder.glob("vm-*") if p.is_dir() and OLD_IMAGE.fullmatch(p.name) and p.name != current] \
        if folder.is_dir() else []
    for path in old:
        if not dry_run:
            shutil.rmtree(path)
    return [f"image folder {p}" for p in old]


def _vagrant_boxes(current: str, dry_run: bool) -> list[str]:
    if shutil.which("vagrant") is None:
        return []
    listed = box_command("list", "--machine-readable")
    names = re.findall(r",box-name,(swarmdeck/vm-[0-9a-f]{12})$", listed.stdout, re.MULTILINE)
    old = sorted({n for n in names if n != f"swarmdeck/{current}"})
    for name in old:
        if not dry_run:
            box_command("remove", "--force", "--all", name)
    return [f"Vagrant box {n}" for n in old]


def _pool_volumes(current: str, dry_run: bool) -> list[str]:
    """vm-<recipe>-* uploads and vagrant-libvirt's copies of old boxes, if no domain uses them."""
    try:
        provider = lv.LibvirtProvider()
        pool = provider.conn.storagePoolLookupByName(lv.POOL)
    except Exception:  # noqa: BLE001 - no libvirt, no daemon or no pool: nothing of ours there
        return []
    pool.refresh(0)
    volumes = pool.listAllVolumes(0)
    # a node's disk is an overlay: its base shows in the volume's backing store, not always in the domain
    backing = [ET.fromstring(v.XMLDesc(0)).findtext("backingStore/path") or "" for v in volumes]
    in_use = "\n".join([*(d.XMLDesc(0) for d in provider.conn.listAllDomains(0)), *(f">{b}<" for b in backing)])
    old = []
    for volume in volumes:
        recipe = re.search(r"vm-[0-9a-f]{12}", volume.name())
        ours = volume.name().startswith("vm-") or volume.name().startswith("swarmdeck-VAGRANTSLASH-vm-")
        if ours and recipe and recipe.group(0) != current and f">{volume.path()}<" not in in_use:
            old.append(volume)
    for volume in old:
        if not dry_run:
            volume.delete(0)
    return [f"pool volume {v.name()}" for v in old]
