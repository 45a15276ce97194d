#!/usr/bin/env bash
# Build the lab's base image (Debian 12 minbase + systemd + python3) with
# debootstrap and import it into podman. The image carries the hash of this
# recipe as a label; when the label matches, nothing is rebuilt.
set -euo pipefail

image=${PGHARBOR_IMAGE:?set PGHARBOR_IMAGE (the Makefile does)}
suite=bookworm
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,acl,ca-certificates,iproute2,procps,iputils-ping,netcat-openbsd,less
here=$(cd "$(dirname "$0")" && pwd)
recipe=$( { cat "$0"; echo "$suite $packages"; } | sha256sum | cut -c1-16)

die() { echo "build-image: $*" >&2; exit 1; }

command -v podman >/dev/null || die "podman is missing: run 'make system-deps' as root (installs podman, runc, debootstrap)"
command -v debootstrap >/dev/null || die "debootstrap is missing: run 'make system-deps' as root"
[ "$(id -u)" = 0 ] || die "debootstrap needs root: run 'sudo make lab' (or build the image once as root)"

current=$(podman image inspect --format '{{ index .Labels "pgharbor.recipe" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$recipe" ]; then
    echo "build-image: $image is up to date (recipe $recipe)"
    exit 0
fi

# The mirror comes from this machine's own apt configuration unless given.
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $0 ~ /bookworm/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt: set DEBIAN_MIRROR=<url of a Debian mirror>"

work=$(mktemp -d "${TMPDIR:-/tmp}/pgharbor-image.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "build-image: debootstrap $suite from $mirror (about a minute)"
debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above): check the mirror ($mirror) or set DEBIAN_MIRROR"; }

root=$work/rootfs
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
SOURCES
# Each container gets its own machine-id and hostname at boot.
: >"$root/etc/machine-id"
rm -f "$root/etc/hostname" "$root/var/lib/dbus/machine-id"
# Units that cannot work in a container only slow the boot down.
for unit in systemd-remount-fs.service systemd-udevd.service systemd-udev-trigger.service \
            getty@tty1.service console-getty.service systemd-logind.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
# An old timestamp, so that the first apt task with cache_valid_time fetches the lists.
touch -d @0 "$root/var/lib/apt/lists"

tar -C "$root" -c . | podman import \
    --change 'CMD ["/sbin/init"]' \
    --change "LABEL pgharbor.recipe=$recipe" \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    - "$image" >/dev/null
# The image this one replaces is now untagged: drop it rather than let old ones pile up.
podman image prune -f --filter label=pgharbor.recipe >/dev/null
echo "build-image: built $image (recipe $recipe)"
