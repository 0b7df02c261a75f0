#!/usr/bin/env bash
# `make serve`: serve as soon as the quick models exist.
#
# An empty repository gets the digit and text models first (about a minute on 2 cores);
# the server then starts while the image model trains in the background, and the
# server's repository watcher loads it once it is published (no restart). A repository
# that already holds models is served at once. If a first run stopped before every
# default model was published, the next `make serve` builds what is missing, the same way.
#
# Environment: BIN (the venv's bin), MODELS, HTTP_PORT, GRPC_PORT, REPOSITORY_POLL_S,
# MAKE (to install the image data), BUILD_ARGS (extra `build-models` flags).
set -euo pipefail

BIN=${BIN:-.venv/bin}
MODELS=${MODELS:-models}
HTTP_PORT=${HTTP_PORT:-8000}
GRPC_PORT=${GRPC_PORT:-8500}
REPOSITORY_POLL_S=${REPOSITORY_POLL_S:-2}
MAKE=${MAKE:-make}
BUILD_ARGS=${BUILD_ARGS:-}
PENDING="$MODELS/.first-run"  # the first run has not published every default model yet
IMAGE_LOG="$MODELS/.image-build.log"
export BIN MODELS MAKE BUILD_ARGS PENDING IMAGE_LOG

has_models() {
    [ -n "$(ls -A "$MODELS" 2>/dev/null | grep -v '^\.')" ]
}

has_version() {
    compgen -G "$MODELS/$1/[0-9]*/manifest.json" >/dev/null
}

say() {
    echo "make serve: $*"
}

mkdir -p "$MODELS"
# Digit and text side by side: each is small enough that its training is mostly Python
# per step, so two processes finish well before one doing both. Each line says which
# model it is about.
build_quick_models() {
    local task pids=() failed=0
    for task in "$@"; do
        # shellcheck disable=SC2086
        ( set -o pipefail
          "$BIN/modelserve" build-models --out "$MODELS" --only "$task" $BUILD_ARGS 2>&1 |
              sed -u "s/^/[$task] /" ) &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    return "$failed"
}

if ! has_models; then
    touch "$PENDING"
    say "no models in $MODELS/: building digit and text first (about a minute), then serving;"
    say "the image model trains in the background and is served once published"
fi
if [ -f "$PENDING" ]; then  # a first run, or one that stopped before it was done
    missing=()
    for task in digit text; do
        has_version "$task" || missing+=("$task")
    done
    if [ "${#missing[@]}" -gt 0 ] && ! build_quick_models "${missing[@]}"; then
        say "building ${missing[*]} failed (see above); make serve again retries"
        exit 1
    fi
fi

builder=""
stop_builder() {
    if [ -n "$builder" ] && kill -0 "$builder" 2>/dev/null; then
        say "stopping the image build (the next make serve starts it again)"
        kill -- "-$builder" 2>/dev/null || kill "$builder" 2>/dev/null || true
    fi
}
trap stop_builder EXIT

if [ -f "$PENDING" ] && ! has_version image; then
    say "image model: training in the background (log: $IMAGE_LOG)"
    # Its own session and process group (so stopping it stops all of it); its output goes
    # to the log, its one-line outcome to the console (fd 3).
    setsid bash -c '
        if "$MAKE" --no-print-directory data &&
           "$BIN/modelserve" build-models --out "$MODELS" --only image $BUILD_ARGS; then
            rm -f "$PENDING"
            echo "make serve: image model published; the server picks it up on its next scan" >&3
        else
            echo "make serve: the image build failed; see $IMAGE_LOG" >&3
        fi
    ' 3>&2 >"$IMAGE_LOG" 2>&1 &
    builder=$!
elif [ -f "$PENDING" ]; then
    rm -f "$PENDING"
fi

"$BIN/modelserve" serve --model-repository "$MODELS" --http-port "$HTTP_PORT" \
    --grpc-port "$GRPC_PORT" --repository-poll-s "$REPOSITORY_POLL_S"
