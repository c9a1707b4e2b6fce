"""image.prune removes the VM artefacts of older recipes (image folder, pool volumes) and the
host engine's node images of older recipes, and keeps the current recipe's and anything a VM
or a container still uses."""

from __future__ import annotations

import pytest

from provision.images import node as node_images
from provision.images import prune as image_prune
from provision.images import vm as vm_images
from provision.paths import home
from provision.providers.libvirt import connection as libvirt_connection
from provision.providers.libvirt import provider as lv
from tests.labs import cli

pytestmark = pytest.mark.vm
OLD = "vm-000000000000"  # a recipe hash no build makes


def test_prune_removes_only_older_recipes(libvirt_conn, engine):
    node_tag = node_images.node_image_tag()
    engine.images.get(node_tag).tag("swarmdeck/node", OLD.removeprefix("vm-"))  # an older recipe's name
    provider = lv.LibvirtProvider()
    pool = provider._pool()
    old_folder = home() / "images" / OLD
    old_folder.mkdir(parents=True, exist_ok=True)
    (old_folder / "vmlinuz").write_bytes(b"old kernel")
    provider._upload(pool, f"{OLD}-vmlinuz", old_folder / "vmlinuz", "raw")
    current = vm_images.vm_image().name
    try:
        listed = cli("image.prune", "--dry-run").stdout
        assert f"would remove pool volume {OLD}-vmlinuz" in listed and f"image folder {old_folder}" in listed
        assert f"would remove image swarmdeck/node:{OLD.removeprefix('vm-')}" in listed
        assert current not in listed and node_tag not in listed
        assert old_folder.exists()
        cli("image.prune")
        pool.refresh(0)
        names = [v.name() for v in pool.listAllVolumes(0)]
        assert f"{OLD}-vmlinuz" not in names and not old_folder.exists()
        assert node_images.has_image(engine, node_tag)  # the current node image stays
        assert not node_images.has_image(engine, f"swarmdeck/node:{OLD.removeprefix('vm-')}")
        assert all(current not in line for line in image_prune.prune(dry_run=True))  # the current recipe stays
    finally:
        libvirt_connection.delete_volume(pool, f"{OLD}-vmlinuz")
        if node_images.has_image(engine, f"swarmdeck/node:{OLD.removeprefix('vm-')}"):
            engine.images.remove(f"swarmdeck/node:{OLD.removeprefix('vm-')}")
