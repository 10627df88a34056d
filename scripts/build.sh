#!/usr/bin/env bash
# Configures (once) and builds Ringtail. Usage: scripts/build.sh [BUILD_DIR] [extra cmake args]
# Default BUILD_DIR is build/ (RelWithDebInfo). Targets are built with all cores.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
if [ ! -f "$dir/build.ninja" ]; then
    cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
fi
ninja -C "$dir" ${RINGTAIL_TARGETS:-} >/dev/null || ninja -C "$dir" ${RINGTAIL_TARGETS:-}
