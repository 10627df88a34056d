#!/usr/bin/env bash
# Builds Ringtail and runs its whole test suite: unit and integration tests (release build), the
# lock-free stress tests under TSan, unit tests under ASan+UBSan and the fuzz targets for a short
# seeded run (one clang build), and the formatting check. Installs missing Debian packages first.
#
# Usage: scripts/test.sh [--quick]   (--quick: release build only, no sanitizer or fuzz builds)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

quick=0
[ "${1:-}" = "--quick" ] && quick=1

scripts/deps.sh || { echo "test.sh: could not install the packages the build needs" >&2; exit 1; }

passed=0
failed=0
failures=()
log_dir=$(mktemp -d /tmp/ringtail-test.XXXXXX)

# Runs ctest in a build folder and adds its counts to the totals.
run_ctest() {
    local label=$1 dir=$2
    shift 2
    local out="$log_dir/$label.log"
    echo "== $label"
    local start=$SECONDS
    (cd "$dir" && ctest --output-on-failure --timeout 900 "$@") >"$out" 2>&1
    local rc=$?
    local took=$((SECONDS - start))
    local summary
    summary=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$out" | tail -1)
    if [ -z "$summary" ]; then
        echo "   no ctest summary (rc=$rc); log: $out"
        tail -30 "$out"
        failed=$((failed + 1))
        failures+=("$label: ctest did not run")
        return
    fi
    local total fail
    total=$(echo "$summary" | sed -E 's/.*out of ([0-9]+).*/\1/')
    fail=$(echo "$summary" | sed -E 's/.*tests passed, ([0-9]+) tests? failed.*/\1/')
    passed=$((passed + total - fail))
    failed=$((failed + fail))
    echo "   $summary (${took} s)"
    if [ "$fail" -ne 0 ] || [ $rc -ne 0 ]; then
        grep -E "\(Failed\)|\(Timeout\)|\(SEGFAULT\)|\*\*\*" "$out" | head -20
        sed -n '/The following tests FAILED/,$p' "$out" | head -30
        failures+=("$label")
        [ "$fail" -eq 0 ] && failed=$((failed + 1))
    fi
}

build() {
    local dir=$1
    shift
    echo "== build $dir"
    local start=$SECONDS
    if ! scripts/build.sh "$dir" "$@"; then
        echo "   build of $dir failed after $((SECONDS - start)) s"
        failed=$((failed + 1))
        failures+=("build $dir")
        return 1
    fi
    echo "   built in $((SECONDS - start)) s"
}

# 1. Release build: everything, unit and integration tests (two files at a time: the ones that
#    share DPDK's run folder or network namespaces hold a lock, tests/CMakeLists.txt).
if build build; then
    run_ctest release build -j2 -LE integration
    run_ctest integration build -j2 -L integration
fi

if [ $quick -eq 0 ]; then
    # 2. TSan: the ring stress tests, the multi-shard and multi-worker runtime tests (exchange),
    #    the metrics hand-off, and every net test (acceptor, HTTP, hub client, external channel,
    #    control connection, socket transport and data mesh).
    if RINGTAIL_TARGETS="engine_unit_tests net_unit_tests" \
        build build-tsan -DRINGTAIL_SANITIZE=thread -DRINGTAIL_PERF=OFF; then
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
            run_ctest tsan build-tsan -j2 -LE integration -R 'Stress|Runtime|Metrics|Application|Control|SocketTransport|DataMesh|^[a-z_]+\.'
    fi
    # 3. One clang build with ASan+UBSan and libFuzzer's coverage instrumentation: every unit test
    #    under ASan+UBSan, then the fuzz targets (libFuzzer), short seeded runs.
    if CC=clang CXX=clang++ \
        RINGTAIL_TARGETS="engine_unit_tests net_unit_tests cli_unit_tests fuzz_targets" \
        build build-fuzz -DRINGTAIL_FUZZ=ON -DRINGTAIL_PERF=OFF; then
        ASAN_OPTIONS=detect_leaks=1 run_ctest asan build-fuzz -j2 -LE integration -E '^fuzz\.'
        run_ctest fuzz build-fuzz -j2 -R '^fuzz\.'
    fi
    # 4. Formatting.
    echo "== clang-format"
    unformatted=$(git ls-files '*.h' '*.cc' | xargs clang-format --dry-run -Werror 2>&1 |
        grep -oE '^[^:]+\.(h|cc)' | sort -u)
    if [ -n "$unformatted" ]; then
        echo "   not formatted: $unformatted"
        failed=$((failed + 1))
        failures+=("clang-format")
    else
        echo "   all files formatted"
        passed=$((passed + 1))
    fi
fi

echo
if [ ${#failures[@]} -ne 0 ]; then
    echo "failed: ${failures[*]} (logs in $log_dir)"
fi
echo "ringtail: $passed passed, $failed failed, in $((SECONDS / 60)) min $((SECONDS % 60)) s"
[ "$failed" -eq 0 ]
