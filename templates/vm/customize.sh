#!/bin/sh
# customize.sh ROOT: turn a debootstrap tree into swarmdeck's VM base (run as root on the
# build host, after the overlay files and the engine's systemd drop-in are copied in).
set -eu
R=$1
units="$R/etc/systemd/system"
mkdir -p "$units/multi-user.target.wants" "$units/sockets.target.wants" \
	"$units/network-online.target.wants" "$units/sysinit.target.wants"
# the network: systemd-networkd with DHCP (10-lab.network), waited for by docker.service
ln -sf /lib/systemd/system/systemd-networkd.service "$units/multi-user.target.wants/"
ln -sf /lib/systemd/system/systemd-networkd.socket "$units/sockets.target.wants/"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service "$units/network-online.target.wants/"
ln -sf /etc/systemd/system/swd-seed.service "$units/sysinit.target.wants/"
# the registry and HAProxy run as containers where a lab wants them; no apt timers in a lab
rm -f "$units/multi-user.target.wants/docker-registry.service" "$units/multi-user.target.wants/haproxy.service" \
	"$units"/timers.target.wants/apt-daily*.timer
# nothing here needs these at boot, and each costs seconds under software emulation
rm -f "$units/multi-user.target.wants/e2scrub_reap.service"
ln -sf /dev/null "$units/ipvsadm.service"
printf '/dev/vda / ext4 defaults,noatime,errors=remount-ro,x-systemd.growfs 0 1\n' > "$R/etc/fstab"
echo swarmdeck > "$R/etc/hostname"
# per-machine identity: a fresh machine-id at first boot, the host key from the seed disk
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id" "$R"/etc/ssh/ssh_host_*
# names: systemd-resolved's stub, fed by DHCP (libvirt's dnsmasq at the lab network's gateway
# forwards to the host's resolver), so apt and image pulls work on VM nodes
ln -sf /lib/systemd/system/systemd-resolved.service "$units/sysinit.target.wants/"
ln -sf /lib/systemd/system/systemd-resolved.service "$units/dbus-org.freedesktop.resolve1.service"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$R/etc/resolv.conf"
# a small initrd (conf.d/swarmdeck.conf, modules), made in the tree
for fs in proc sys dev; do mount --bind "/$fs" "$R/$fs"; done
trap 'for fs in dev sys proc; do umount "$R/$fs" 2>/dev/null || true; done' EXIT
chroot "$R" update-initramfs -u -k all >/dev/null
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/* "$R"/var/log/*.log
