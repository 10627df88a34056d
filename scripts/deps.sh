#!/usr/bin/env bash
# Installs the Debian packages Ringtail needs to build, test and run its demo and perf scripts.
# Idempotent and quick when nothing is missing: it asks dpkg first and runs apt-get only for
# what is absent.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config git
    libboost-program-options-dev libboost-dev libhwloc-dev libconcurrentqueue-dev
    libreaderwriterqueue-dev libgtest-dev libgmock-dev libbenchmark-dev libdpdk-dev libisal-dev
    nlohmann-json3-dev libxxhash-dev libfmt-dev
    clang libclang-rt-14-dev clang-format
    python3 gnuplot-nox iproute2 procps
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "missing packages (${missing[*]}) and not root: run this script as root" >&2
        exit 77
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
