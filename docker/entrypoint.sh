#!/bin/sh
# Entry point of the repro image: run the given command (default: `dvc repro`) in /repro.
#
#   docker run --gpus all --ipc=host -v dvc-cache:/cache repro dvc repro
#
# Any user id works (`--user "$(id -u):$(id -g)"`): git's identity and safe.directory and the
# DVC cache location (/cache) are system-wide settings of the image, and HOME falls back to a
# writable folder when the image's one is not writable for that user.
set -eu
if [ ! -w "${HOME:-/nonexistent}" ]; then
    HOME="$(mktemp -d /tmp/home.XXXXXX)"
    export HOME
fi
exec "$@"
