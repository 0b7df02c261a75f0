#!/usr/bin/env bash
# Build a minimal Debian base image with Python 3 and venv, for offline image builds where no
# base image can be pulled: mmdebstrap downloads Debian packages (the host's apt mirror access
# is enough) into a tarball, which `podman import` turns into an image.
# Cached: the tarball under $CACHE_DIR and the imported image are reused when present.
#   usage: base-image.sh [IMAGE]     (default localhost/modelserve-base:bookworm)
set -euo pipefail

image=${1:-localhost/modelserve-base:bookworm}
suite=${DEBIAN_SUITE:-bookworm}
cache_dir=${CACHE_DIR:-.cache/container}
tarball=$cache_dir/base-$suite.tar

if podman image exists "$image"; then
    echo "base-image: $image exists"
    exit 0
fi
mkdir -p "$cache_dir"
if [[ ! -s $tarball ]]; then
    echo "base-image: mmdebstrap $suite -> $tarball"
    # Docs, man pages and locales are dropped: they are never read in a server image.
    # MIRROR (optional) overrides mmdebstrap's default Debian mirror.
    mmdebstrap --variant=minbase --mode=root --format=tar \
        --include=python3,python3-venv,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --aptopt='Acquire::Retries "3"' \
        "$suite" "$tarball.tmp" ${MIRROR:+"$MIRROR"}
    mv "$tarball.tmp" "$tarball"
fi
podman import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' "$tarball" "$image"
echo "base-image: imported $image"
