#!/usr/bin/env bash
# Make podman usable for the offline image build and container test (Debian/Ubuntu, as root):
# installs podman, runc and mmdebstrap when missing and writes a minimal container
# configuration (runc runtime, vfs storage, a sane open-files limit) when none exists.
# Exit 3 when podman is missing and cannot be installed here (not root, no apt-get).
set -euo pipefail

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if ((${#need[@]})); then
    if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "podman-setup: missing ${need[*]} and cannot install (needs root and apt-get)" >&2
        exit 3
    fi
    echo "podman-setup: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # With recommends: the combination checked here (slirp4netns, uidmap, catatonit, ...).
    apt-get install -y -q "${need[@]}" uidmap >/dev/null
fi

if [[ $(id -u) == 0 ]]; then
    mkdir -p /etc/containers
    # runc: crun fails in some nested sandboxes. Container rlimits within this shell's hard
    # limits: podman's defaults (over a million) fail without CAP_SYS_RESOURCE
    # ("error setting rlimit"); a server needs a few hundred processes/threads at most.
    if [[ ! -s /etc/containers/containers.conf ]]; then
        nofile=$(ulimit -Hn) nproc=$(ulimit -Hu)
        [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
        [[ $nproc == unlimited || $nproc -gt 4096 ]] && nproc=4096
        ulimits="\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\""
        printf '[engine]\nruntime = "runc"\n\n[containers]\ndefault_ulimits = [%s]\n' "$ulimits" \
            >/etc/containers/containers.conf
    fi
    # vfs: overlay storage needs kernel support a nested sandbox may not have.
    if [[ ! -s /etc/containers/storage.conf ]]; then
        printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' \
            >/etc/containers/storage.conf
    fi
fi
podman --version
