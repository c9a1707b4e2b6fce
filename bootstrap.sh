#!/usr/bin/env bash
# swarmdeck quick start. Sets up everything this machine lacks, then:
#   ./bootstrap.sh up [lab.up flags]   -> invoke lab.up (the default lab)
#   ./bootstrap.sh test [pytest args]  -> the whole test suite (what CI runs)
# As root on Debian it installs the Docker engine (and starts dockerd when no
# service manager runs), debootstrap and the Python venv package from Debian's
# archive. Elsewhere it needs a running Docker engine and python3 with venv.
set -euo pipefail
cd "$(dirname "$0")"
action=${1:-up}
[ $# -gt 0 ] && shift
case "$action" in up|test) ;; *) echo "usage: $0 up|test [args]" >&2; exit 2 ;; esac

say() { printf '• %s\n' "$*" >&2; }
is_root() { [ "$(id -u)" = 0 ]; }
has_apt() { command -v apt-get >/dev/null 2>&1; }
engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

apt_updated=""
apt_install() {
	local missing=()
	for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]} from Debian packages"
	if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_system_packages() {
	is_root && has_apt || return 0
	apt_install ca-certificates debootstrap openssh-client iptables
	python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3 python3-venv
	engine_answers || apt_install docker.io
	# the visualizer's browser tests drive Debian's Chromium (no browser download needed);
	# the VM tests run libvirt + QEMU (and Vagrant with vagrant-libvirt), and build libvirt-python
	# against libvirt-dev
	if [ "$action" = test ]; then
		apt_install chromium fonts-liberation libvirt-daemon-system qemu-system-x86 qemu-utils dnsmasq-base \
			e2fsprogs libvirt-dev pkg-config gcc python3-dev vagrant vagrant-libvirt
	fi
}

libvirt_answers() { command -v virsh >/dev/null 2>&1 && virsh -c qemu:///system version >/dev/null 2>&1; }

kvm_device_like_udev() {
	# Without udev (a container or a minimal VM as host) /dev/kvm stays root-only (0600) where
	# Debian's udev rule makes it root:kvm 0660. libvirt then probes QEMU as root (KVM present)
	# but checks /dev/kvm as its qemu user (KVM absent), finds its capability cache stale at
	# every lookup and probes QEMU again: 3-4 minutes per VM lab made here. Give it udev's mode.
	# (Whether KVM really runs guests is decided apart: provision/providers/libvirt/domains.py.)
	[ -c /dev/kvm ] && [ "$(stat -c %a:%G /dev/kvm)" = 600:root ] && getent group kvm >/dev/null || return 0
	say "giving /dev/kvm the group and mode udev gives it (root:kvm 0660)"
	chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
}

ensure_libvirt() {
	# Like dockerd: started by hand where no service manager runs (logs in /var/log/libvirt/).
	is_root && kvm_device_like_udev
	libvirt_answers && return 0
	is_root && command -v libvirtd >/dev/null 2>&1 || return 0
	if [ -d /run/systemd/system ]; then
		systemctl start libvirtd
	else
		say "starting virtlogd and libvirtd in the background"
		pgrep -x virtlogd >/dev/null || virtlogd -d
		pgrep -x libvirtd >/dev/null || libvirtd -d
	fi
	for _ in $(seq 1 30); do libvirt_answers && return 0; sleep 1; done
	echo "libvirtd did not answer within 30 s" >&2
	exit 1
}

ensure_browser() {
	# Without Debian's Chromium (a laptop), Playwright fetches its own build once.
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
		|| [ -n "${SWARMDECK_CHROMIUM:-}" ] || .venv/bin/playwright install chromium
}

ensure_engine() {
	engine_answers && return 0
	if is_root && command -v dockerd >/dev/null 2>&1; then
		if [ -d /run/systemd/system ]; then
			say "starting docker.service"
			systemctl start docker
		else
			say "starting dockerd in the background (log: /var/log/swarmdeck-dockerd.log)"
			nohup dockerd >/var/log/swarmdeck-dockerd.log 2>&1 &
		fi
		for _ in $(seq 1 60); do engine_answers && return 0; sleep 1; done
		echo "dockerd did not answer within 60 s; see /var/log/swarmdeck-dockerd.log" >&2
		exit 1
	fi
	echo "no Docker engine answers: start Docker (or run this as root on Debian) and try again" >&2
	exit 1
}

ensure_venv() {
	local stamp=.venv/.swarmdeck-installed
	if [ ! -x .venv/bin/python ]; then
		say "creating the virtual environment .venv"
		python3 -m venv .venv
	fi
	# libvirt-python (the libvirt provider) is built where libvirt's headers are installed
	local extras=test,vagrant
	pkg-config --exists libvirt 2>/dev/null && extras=test,vagrant,libvirt
	if [ "$(cat "$stamp" 2>/dev/null)" != "$extras" ] || [ pyproject.toml -nt "$stamp" ]; then
		say "installing swarmdeck and its Python packages ($extras) into .venv"
		.venv/bin/pip install -q --upgrade pip >/dev/null
		.venv/bin/pip install -q -e ".[$extras]"
		echo "$extras" > "$stamp"
	fi
}

ensure_system_packages
ensure_engine
ensure_venv
if [ "$action" = test ]; then ensure_browser; ensure_libvirt; fi
export PATH="$PWD/.venv/bin:$PATH"
swarmdeck image.build
if [ "$action" = up ]; then
	exec swarmdeck lab.up "$@"
fi
# Two workers (tests/conftest.py says why): the VM tier on one, the docker tiers on the
# other; SWARMDECK_TEST_WORKERS=0 runs everything in this one process.
exec pytest -n "${SWARMDECK_TEST_WORKERS:-2}" --dist loadscope --no-loadscope-reorder "$@"
