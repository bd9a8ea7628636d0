#!/bin/sh
# Runs every test suite twice: a normal build, then a build with AddressSanitizer and
# UndefinedBehaviorSanitizer (leak checking on); then, on the normal build, the C test programs under
# valgrind's memcheck and agentidd under memcheck for the D-Bus core tests (any memory error or leak
# fails). Installs missing Debian packages first (as root). Each TPM test starts and stops its own
# swtpm. Exit status: 0 only if everything passed.
. "$(dirname "$0")/lib.sh"

install_deps
cd "$AGENTID_SRC"

failed=0
passed=0
status=0
# Counts come from meson's own summary ("Ok: N", "Fail: N", "Timeout: N").
# run_suites LABEL DIR [meson test options...]
run_suites() {
        label=$1
        dir=$2
        shift 2
        say "Tests ($label)"
        log="$dir/meson-logs/run-tests.out"
        { rc=0; meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" 2>&1 || rc=$?; echo "$rc" >"$log.rc"; } |
                tee "$log"
        [ "$(cat "$log.rc")" -eq 0 ] || status=1
        ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$log")
        bad=$(sed -n 's/^\(Fail\|Timeout\|Unexpected Pass\): *\([0-9]*\).*/\2/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
        passed=$((passed + ${ok:-0}))
        failed=$((failed + ${bad:-0}))
}

say "Building (build/)"
build build
run_suites "plain build" build

say "Building with ASan+UBSan (build-sanitize/)"
build build-sanitize -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_suites "ASan+UBSan" build-sanitize

# The top-level meson.build's "valgrind" test setup: suites unit, tpm and fuzz (the corpora replayed)
# under memcheck. Then the "valgrind" suite: agentidd under memcheck for test_tokens.py, test_audit.py
# and test_offboard.py (tests/dbus/meson.build says why not the others).
run_suites "valgrind: C tests" build --setup=valgrind
run_suites "valgrind: agentidd" build --suite valgrind

echo "$passed passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
