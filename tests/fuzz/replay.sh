#!/usr/bin/env bash
# replay.sh - runs each fuzz target, built with driver.c (no libFuzzer), over its checked-in
# seed corpus and regression inputs: part of `make test` and `make asan` (tests/fuzz/README.md).
#
#   tests/fuzz/replay.sh BIN_DIR TARGET...
#
# Fails when a target crashes or aborts on an input, when a sanitizer reports anything (the
# sanitizer build aborts on the first report; the scan below also catches a report that did
# not), or when a target has no seed corpus.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for t in "$@"; do
    inputs=("$here/corpus/$t")
    [ -d "$here/regressions/$t" ] && inputs+=("$here/regressions/$t")
    if [ ! -d "$here/corpus/$t" ]; then
        echo "fuzz replay: $t has no seed corpus (tests/fuzz/corpus/$t)" >&2
        failed=1
        continue
    fi
    if ! "$bin_dir/$t" "${inputs[@]}" >"$log" 2>&1 ||
        grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
        cat "$log" >&2
        echo "fuzz replay: $t FAILED" >&2
        failed=1
    else
        cat "$log"
    fi
done
exit $failed
