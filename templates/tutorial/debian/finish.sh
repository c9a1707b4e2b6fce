#!/bin/sh
# Turns a debootstrap minbase root into the stand-ins' base image, the stand-in for Docker
# Hub's debian:bookworm-slim. It runs inside that root, under chroot. Like Docker's slim
# images: dpkg installs no documentation, manual pages or translations, apt keeps no
# downloaded package, and nothing of the machine that built it stays (resolv.conf,
# hostname, logs, apt's lists).
set -eu

cat > /etc/dpkg/dpkg.cfg.d/docker-slim <<'END'
# as debian:*-slim: no documentation, manual pages or translations (copyrights stay)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
END

cat > /etc/apt/apt.conf.d/docker-clean <<'END'
// as Docker's debian images: no package files kept after an install
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
END
echo 'Acquire::Languages "none";' > /etc/apt/apt.conf.d/docker-no-languages

find /usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete
find /usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf /usr/share/man/* /usr/share/groff/* /usr/share/info/* /usr/share/lintian/* /usr/share/linda/*
find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
rm -rf /var/cache/apt/* /var/lib/apt/lists/* /var/cache/debconf/*-old /var/lib/dpkg/*-old
rm -f /var/log/*.log /var/log/apt/* /etc/resolv.conf /etc/hostname
