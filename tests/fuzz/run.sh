#!/usr/bin/env bash
# run.sh - `make fuzz`: runs each libFuzzer target in turn for a bounded time
# (tests/fuzz/README.md).
#
#   tests/fuzz/run.sh BIN_DIR SECONDS TARGET...
#
# Each target starts from a scratch copy of its checked-in seed corpus and regression inputs
# (new corpus entries stay in the scratch directory, which is removed; nothing is written under
# tests/fuzz/), with -max_total_time=SECONDS, a per-input timeout and an RSS cap. A crash, leak,
# timeout or sanitizer report makes libFuzzer exit non-zero and writes the input to
# build-fuzz/findings/<target>/ for a regression case; the script then fails after the last
# target. FUZZ_JOBS unset: one target at a time (the CPU is shared). Extra libFuzzer flags may
# be given in FUZZ_FLAGS. A target's dictionary of tokens, tests/fuzz/<target>.dict, is used
# when there is one.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir=$1
seconds=$2
shift 2
findings="$(cd "$bin_dir/.." && pwd)/findings"
# Debian's llvm-14 has the symbolizer outside PATH (the unversioned name is package llvm's).
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
    export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "$@"; do
    mkdir -p "$scratch/$t" "$findings/$t"
    cp "$here/corpus/$t"/* "$scratch/$t/"
    [ -d "$here/regressions/$t" ] && cp "$here/regressions/$t"/* "$scratch/$t/" 2>/dev/null
    dict=()
    [ -f "$here/$t.dict" ] && dict=("-dict=$here/$t.dict")
    echo "=== fuzz $t: ${seconds}s" >&2
    # shellcheck disable=SC2086 # FUZZ_FLAGS is a list of flags
    if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$bin_dir/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/$t/" "${dict[@]}" \
        ${FUZZ_FLAGS:-} "$scratch/$t"; then
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in $findings/)" >&2
    exit 1
fi
echo "fuzz: every target ran ${seconds}s without a finding" >&2
