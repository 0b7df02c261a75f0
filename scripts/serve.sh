#!/usr/bin/env bash
# `make serve`: serve as soon as the quick models exist.
#
# An empty repository gets the digit and text models first (about a minute on 2 cores);
# the server then starts while the image model trains in the background, and the
# server's repository watcher loads it once it is published (no restart). A repository
# that already holds models is served at once. If a first run stopped before the image
# model was published, the next `make serve` trains it again in the background.
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
PENDING="$MODELS/.image-pending"  # first run: the image model is still owed
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
if ! has_models; then
    touch "$PENDING"
    say "no models in $MODELS/: building digit and text first (about a minute), then serving;"
    say "the image model trains in the background and is served once published"
    # shellcheck disable=SC2086
    "$BIN/modelserve" build-models --out "$MODELS" --only digit,text $BUILD_ARGS
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
            echo "make serve: image model published; the server loads it now" >&3
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
