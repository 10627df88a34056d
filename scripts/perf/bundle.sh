#!/usr/bin/env bash
# Packs a Ringtail build into one folder that runs on another Linux x86-64 host with none of its
# libraries and no package manager (a bare-metal or lent machine with more cores, to measure how
# the engine and the DPDK data channel scale): the programs the perf scripts start, every shared
# library they load (glibc and its loader too, so the host's own versions do not matter), the DPDK
# drivers those scripts use (memif, ring, af_packet, null, the vdev bus, the ring mempool), and
# dpdk-testpmd with them when it is installed.
#
# Usage: scripts/perf/bundle.sh [--build-dir DIR] [--out DIR]
#   --build-dir DIR  the build (default $BUILD_DIR, else build); its bin/ must hold the programs
#   --out DIR        the bundle (default build-bundle, which git ignores); made anew (a folder
#                    that holds anything else is refused)
#
# The bundle:
#   bin/NAME     one wrapper a program: starts it with the bundled loader and libraries only;
#                where the command line has EAL arguments (after `--` for Ringtail's programs,
#                first for dpdk-testpmd) it adds `-d DRIVER` for each driver, since EAL's own
#                driver folder is not there. A program that links DPDK refuses (exit 69) on a host
#                that has DPDK's drivers in that folder: EAL would load them beside the bundle's
#   real/NAME    the programs;  lib/  the libraries, the DPDK drivers among them
#   share/GPL-3  the text scripts/perf/cluster.py counts words in (its --text)
#   MANIFEST     what is where (EAL's own driver folder too), and the build's commit
# On the host, from a checkout of the same commit (scripts/perf/scaling.sh does all of it):
#   RINGTAIL_BIN_DIR=$PWD/build-bundle/bin PATH=$PWD/build-bundle/bin:$PATH \
#     scripts/perf/cluster.py --dpdk --wide --text build-bundle/share/GPL-3
# Exit 0, 64 for a bad argument, 69 when the build lacks a program.
set -euo pipefail
export LC_ALL=C

me=bundle.sh
die() {
    echo "${me}: $2" >&2
    exit "$1"
}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD_DIR:-build}
out='build-bundle'
while [[ $# -gt 0 ]]; do
    case $1 in
    --build-dir | --out)
        [[ $# -ge 2 ]] || die 64 "$1 needs a folder"
        [[ $1 == --build-dir ]] && build=$2 || out=$2
        shift 2
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    *) die 64 "unknown argument '$1' (see --help)" ;;
    esac
done
cd "$root"

# The programs scripts/perf/{cluster,dpdk_frames,latency}.py and .sh start.
programs=(sequence word_count passthrough ringtail-send ringtail-recv ringtail-check
          ringtail-ctl ringtail-dpdk-pingpong)
for p in "${programs[@]}"; do
    [[ -x $build/bin/$p ]] || die 69 "$build/bin/$p missing: build first (scripts/build.sh)"
done
testpmd=$(command -v dpdk-testpmd || true)
driver_dir=$(pkg-config --variable=pmdsdir libdpdk 2>/dev/null || true)
[[ -n $driver_dir && -d $driver_dir ]] || driver_dir=$(dirname "$(readlink -f \
    "$(ldconfig -p | awk '/librte_net_memif\.so\.[0-9]+ /{print $NF; exit}')")")
drivers=()
for d in bus_vdev mempool_ring net_memif net_ring net_af_packet net_null; do
    shopt -s nullglob
    found=("$driver_dir"/librte_"$d".so.[0-9]*)
    shopt -u nullglob
    [[ ${#found[@]} -gt 0 ]] || die 69 "the DPDK driver librte_$d is not in $driver_dir"
    # The soname's file (librte_X.so.23) sorts before the one it points to (librte_X.so.23.0).
    drivers+=("${found[0]}")
done

if [[ -d $out && ! -f $out/MANIFEST && -n $(ls -A "$out") ]]; then
    die 64 "$out holds files and is not a bundle: give another --out"
fi
rm -rf "$out"
mkdir -p "$out"/{bin,real,lib,share}
out=$(cd "$out" && pwd)

# Every library a file needs (ldd resolves the whole tree), and the loader itself.
loader=''
libs_of() {
    ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// {print $3}
                    $1 ~ /^\// && $2 ~ /^\(/ {print "LOADER " $1}'
}
copy_libs() {
    local line
    while read -r line; do
        if [[ $line == LOADER\ * ]]; then
            loader=${line#LOADER }
            line=$loader
        fi
        [[ -e $out/lib/$(basename "$line") ]] || cp -L "$line" "$out/lib/"
    done < <(libs_of "$1")
}

# The drivers as EAL loads them: -d NAME each, the vdev bus first. A bare file name, which EAL
# hands to dlopen as it is: the loader finds it in the bundle's lib/ (--library-path), the same
# object as when another driver needs it (DT_NEEDED); and EAL checks no folder's permissions,
# which a path would need (it refuses any under a world-writable folder, such as /tmp).
driver_args() {
    local f
    for f in "${drivers[@]}"; do
        printf ' -d %s' "$(basename "$f")"
    done
}

wrapper() { # NAME EAL_PLACE (after-dashes | first | none)
    local name=$1 place=$2
    cat > "$out/bin/$name" <<EOF
#!/usr/bin/env bash
# Bundled by scripts/perf/bundle.sh: $name with the bundle's loader and libraries only.
b=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")/.." && pwd)
args=("\$@")
EOF
    if [[ $place != none ]]; then
        echo "drivers=($(driver_args))" >> "$out/bin/$name"
        # EAL also loads every driver in its own folder (compiled in): on a host that has them,
        # a second copy of a driver would abort it.
        cat >> "$out/bin/$name" <<EOF
if compgen -G '$driver_dir/librte_*.so*' > /dev/null; then
    echo "$name (bundled): this host has DPDK's drivers in $driver_dir, which EAL would load" \\
        "beside the bundle's own: use a build of this host, or hide that folder (unshare -m;" \\
        "mount -t tmpfs none $driver_dir)" >&2
    exit 69
fi
EOF
    fi
    case $place in
    after-dashes)
        cat >> "$out/bin/$name" <<'EOF'
for i in "${!args[@]}"; do
    if [[ ${args[$i]} == -- ]]; then
        args=("${args[@]:0:$((i + 1))}" "${drivers[@]}" "${args[@]:$((i + 1))}")
        break
    fi
done
EOF
        ;;
    first)
        # shellcheck disable=SC2016 # written as it is, for the wrapper to expand
        echo 'args=("${drivers[@]}" "${args[@]}")' >> "$out/bin/$name"
        ;;
    esac
    cat >> "$out/bin/$name" <<EOF
exec "\$b/lib/$(basename "$loader")" --inhibit-cache --library-path "\$b/lib" --argv0 "\$0" \\
    "\$b/real/$name" "\${args[@]}"
EOF
    chmod +x "$out/bin/$name"
}

# The programs without their debug sections (symbols kept, for perf's reports): a RelWithDebInfo
# build's apps are about 29 MB each with them, and the bundle is carried whole to the host.
for p in "${programs[@]}"; do
    cp -L "$build/bin/$p" "$out/real/"
    if command -v strip > /dev/null; then
        strip --strip-debug "$out/real/$p"
    fi
    copy_libs "$build/bin/$p"
done
if [[ -n $testpmd ]]; then
    cp -L "$testpmd" "$out/real/dpdk-testpmd"
    copy_libs "$testpmd"
fi
for f in "${drivers[@]}"; do
    [[ -e $out/lib/$(basename "$f") ]] || cp -L "$f" "$out/lib/"
    copy_libs "$f"
done
[[ -n $loader ]] || die 69 "ldd named no loader for $build/bin/sequence"
for p in "${programs[@]}"; do
    case $p in
    sequence | word_count | passthrough | ringtail-dpdk-pingpong) wrapper "$p" after-dashes ;;
    *) wrapper "$p" none ;;
    esac
done
[[ -z $testpmd ]] || wrapper dpdk-testpmd first
if [[ -r /usr/share/common-licenses/GPL-3 ]]; then
    cp /usr/share/common-licenses/GPL-3 "$out/share/GPL-3"
fi

libs=("$out"/lib/*)
{
    echo "commit $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "build $build"
    echo "made $(date -u +%FT%TZ) on $(uname -srm)"
    echo "loader lib/$(basename "$loader")"
    echo "programs ${programs[*]}${testpmd:+ dpdk-testpmd}"
    echo "drivers $(for f in "${drivers[@]}"; do basename "$f"; done | tr '\n' ' ')"
    echo "eal_driver_dir $driver_dir"
    echo "libraries ${#libs[@]}"
} > "$out/MANIFEST"
also=${testpmd:+ and dpdk-testpmd}
echo "${me}: $out: $(du -sh "$out" | cut -f1), ${#programs[@]} programs${also}," \
    "${#libs[@]} libraries, ${#drivers[@]} DPDK drivers"
