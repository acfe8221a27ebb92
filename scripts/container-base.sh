#!/usr/bin/env bash
# Builds the base image debian:bookworm-slim locally, for machines that reach a Debian mirror but
# no container registry (README "Container"). mmdebstrap makes a minbase Debian 12 from this
# machine's own apt sources, with the path-excludes of Debian's official slim images (no docs
# but the copyright files, no man pages, no info pages, no locales), and podman imports it under
# the two names a Dockerfile's `FROM debian:bookworm-slim` may resolve to.
#
#   scripts/container-base.sh          build unless the image exists
#   scripts/container-base.sh --force  rebuild
#
# Runs as root (mmdebstrap's root mode, podman's vfs storage). PODMAN overrides the podman
# command (default: podman --storage-driver vfs, as scripts/container-test.sh uses).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "container-base: run as root (podman's vfs storage, mmdebstrap's root mode)" >&2
    exit 1
fi

PODMAN=${PODMAN:-podman --storage-driver vfs}
IMAGE=debian:bookworm-slim
# podman import names a short name localhost/...; a Dockerfile's FROM finds either.
NAMES=("localhost/$IMAGE" "docker.io/library/$IMAGE")

if [ "${1:-}" != --force ] && $PODMAN image exists "${NAMES[0]}" &&
    $PODMAN image exists "${NAMES[1]}"; then
    echo "container-base: $IMAGE exists (--force rebuilds)"
    exit 0
fi

sources=/etc/apt/sources.list.d/debian.sources
[ -f "$sources" ] || sources=/etc/apt/sources.list
[ -f "$sources" ] || { echo "container-base: no apt sources file" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The dpkg options are also written into the image (/etc/dpkg/dpkg.cfg.d/99mmdebstrap), so that
# packages installed later in a Dockerfile are slimmed the same way.
excludes=()
for p in /usr/share/doc/'*' /usr/share/man/'*' /usr/share/info/'*' /usr/share/groff/'*' \
         /usr/share/lintian/'*' /usr/share/linda/'*' /usr/share/locale/'*'; do
    excludes+=("--dpkgopt=path-exclude=$p")
done
excludes+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")

echo "container-base: mmdebstrap from $sources"
# The merged-usr hook makes the /usr symlinks itself and installs usr-is-merged, instead of the
# usrmerge package, which would pull full perl (some 50 MB) into the base.
nice -n 10 mmdebstrap --variant=minbase --mode=root --format=tar \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    "${excludes[@]}" \
    --aptopt='Acquire::Languages "none"' \
    --aptopt='APT::Install-Recommends "false"' \
    bookworm "$tmp/base.tar" "$sources"

old=$($PODMAN image inspect --format '{{.Id}}' "${NAMES[0]}" 2>/dev/null || true)
for n in "${NAMES[@]}"; do
    if $PODMAN image exists "$n"; then $PODMAN untag "$n" "$n"; fi
done
$PODMAN import --change 'CMD ["bash"]' "$tmp/base.tar" "${NAMES[0]}"
$PODMAN tag "${NAMES[0]}" "${NAMES[1]}"
# The replaced base, unless an image still builds on it.
if [ -n "$old" ]; then $PODMAN rmi "$old" >/dev/null 2>&1 || true; fi
echo "container-base: $IMAGE is $($PODMAN image inspect --format '{{.Id}}, {{.Size}} bytes' "${NAMES[0]}")"
