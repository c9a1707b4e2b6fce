#!/bin/sh
# Turns a Debian root that holds the node packages into a swarmdeck node root.
# It runs inside that root: under chroot after debootstrap, or as a Dockerfile RUN.
set -eu
src=/usr/local/share/swarmdeck-node

install -m 755 "$src/swarmdeck-init" /usr/local/sbin/swarmdeck-init
for service in docker sshd; do
	mkdir -p "/etc/sv/$service"
	install -m 755 "$src/sv/$service/run" "/etc/sv/$service/run"
done
# runit supervises exactly these two services (Debian points /etc/service elsewhere).
rm -rf /etc/service
mkdir -p /etc/service
ln -s /etc/sv/docker /etc/service/docker
ln -s /etc/sv/sshd /etc/service/sshd

install -m 644 "$src/sshd_config" /etc/ssh/sshd_config
# Every node gets its own host key at first boot; none may be shared through the image.
rm -f /etc/ssh/ssh_host_*
mkdir -p /root/.ssh /etc/docker/tls
chmod 700 /root/.ssh

rm -rf /var/cache/apt/* /var/lib/apt/lists/* /usr/share/doc /usr/share/man /usr/share/info /usr/share/locale
