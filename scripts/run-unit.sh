#!/usr/bin/env bash
# Runs the Criterion unit tests and fails if any sanitizer reported something, since Criterion
# itself only prints a LeakSanitizer report from a worker without failing the test.
set -uo pipefail
bin=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$bin" --jobs 2 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$log"; then
    echo "sanitizer reports above: failing" >&2
    exit 1
fi
exit "$status"
