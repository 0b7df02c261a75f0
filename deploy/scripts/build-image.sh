#!/usr/bin/env bash
# Offline build of the serving image (CPU, or GPU with --gpu) with podman, from a locally made Debian base and a
# pre-downloaded wheelhouse (no registry needs to be reachable during the build).
#   usage: build-image.sh [-m MODELS_DIR] [-t TAG] [--target server|server-with-models] [--gpu]
# MODELS_DIR (default models/) is baked in for the default target; `--target server` builds
# the image without models (mount a repository at /models at run time).
set -euo pipefail
cd "$(dirname "$0")/../.."

models=models tag=localhost/modelserve:cpu target=server-with-models extra=cpu
while (($#)); do
    case $1 in
        -m|--models) models=$2; shift 2 ;;
        -t|--tag) tag=$2; shift 2 ;;
        --target) target=$2; shift 2 ;;
        --gpu) extra=gpu; shift ;;
        *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
    esac
done
base=${BASE_IMAGE:-localhost/modelserve-base:bookworm}
python=${PYTHON:-$( [[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
context=.cache/container/context   # inside the build context; see .dockerignore

deploy/scripts/podman-setup.sh
deploy/scripts/base-image.sh "$base"
dockerfile=deploy/Dockerfile wheels=$context/wheels
[[ $extra == gpu ]] && dockerfile=deploy/Dockerfile.gpu wheels=$context/wheels-gpu
"$python" deploy/scripts/wheelhouse.py --out "$wheels" --extra "$extra"
rm -rf "$context/models" && mkdir -p "$context/models"
if [[ $target == server-with-models ]]; then
    [[ -d $models ]] || { echo "build-image: no model repository at $models" >&2; exit 2; }
    cp -a "$models/." "$context/models/"
fi
# --format docker keeps HEALTHCHECK (the OCI image format has no field for it). No per-step
# layers by default: with vfs storage every step copies the whole file system.
podman build --format docker --layers="${LAYERS:-false}" -f "$dockerfile" --target "$target" \
    --build-arg BASE_IMAGE="$base" \
    --build-arg WHEELS_DIR="$wheels" \
    --build-arg PIP_NO_INDEX=1 \
    --build-arg MODELS_DIR="$context/models" \
    -t "$tag" .
