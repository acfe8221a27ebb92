#!/usr/bin/env bash
# check-function-length.sh - the longest functions of the production sources
# (docs/style.md "Small functions": past about 100 lines a function is several steps).
#
#   scripts/check-function-length.sh                 report: functions over 100 lines, longest first,
#                                                    then the 10 longest whatever their length
#   scripts/check-function-length.sh --over N        report functions over N lines (default 100)
#   scripts/check-function-length.sh --top K         list the K longest (default 10; 0 for none)
#   scripts/check-function-length.sh --max N         fail (exit 1) if any function is over N lines
#   scripts/check-function-length.sh --root DIR      scan DIR instead of this repository
#
# A function's length runs from the first line of its signature to its closing brace,
# comments and blank lines included. The scan relies on the layout clang-format gives our code
# (.clang-format, BreakBeforeBraces: Linux): a function body opens with "{" alone in column 0
# and closes with "}" in column 0; its signature starts at the last line before that "{" which
# begins in column 0 with an identifier. Tests (tests/) and bench/ are not production.
#
# Exit status: 0 report printed (or --max respected), 1 a function is over --max, 2 usage error.
set -euo pipefail

over=100
top=10
max=
root="$(cd "$(dirname "$0")/.." && pwd)"
while [ $# -gt 0 ]; do
    case "$1" in
    --over) over=${2:?--over needs a number}; shift 2 ;;
    --top) top=${2:?--top needs a number}; shift 2 ;;
    --max) max=${2:?--max needs a number}; shift 2 ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "check-function-length: unknown argument: $1" >&2; exit 2 ;;
    esac
done
for n in "$over" "$top" ${max:+"$max"}; do
    case "$n" in
    '' | *[!0-9]*) echo "check-function-length: not a number: $n" >&2; exit 2 ;;
    esac
done
cd "$root"

folders=()
for f in cli server handlers keyring keystore storage kms config aws common; do
    [ -d "$f" ] && folders+=("$f")
done
if [ ${#folders[@]} -eq 0 ]; then
    echo "check-function-length: no production folder under $root" >&2
    exit 2
fi
mapfile -t files < <(find "${folders[@]}" -type f -name '*.c' | LC_ALL=C sort)

# One line per function: length, file:line, name.
lengths=$(awk '
FNR == 1 { sig = 0; in_body = 0 }
# A signature candidate: column 0, an identifier, a "(" somewhere on the line.
!in_body && /^[A-Za-z_][A-Za-z0-9_ \t\*]*[A-Za-z0-9_]+[ \t]*\(/ {
    sig = FNR
    name = $0
    sub(/[ \t]*\(.*/, "", name)
    sub(/.*[ \t\*]/, "", name)
}
!in_body && /^\{/ && sig > 0 { in_body = 1; start = sig; fname = name; next }
in_body && /^\}/ {
    printf "%d %s:%d %s\n", FNR - start + 1, FILENAME, start, fname
    in_body = 0
    sig = 0
}
' "${files[@]}" | sort -k1,1nr -k2,2)

count=$(printf '%s\n' "$lengths" | grep -c . || true)
long=$(printf '%s\n' "$lengths" | awk -v n="$over" '$1 > n')

if [ -n "$long" ]; then
    echo "functions over $over lines (longest first):"
    printf '%s\n' "$long" | awk '{ printf "  %5d  %-40s %s\n", $1, $2, $3 }'
else
    echo "no function over $over lines ($count functions)"
fi
if [ "$top" -gt 0 ]; then
    echo "the $top longest of $count functions:"
    printf '%s\n' "$lengths" | head -n "$top" | awk '{ printf "  %5d  %-40s %s\n", $1, $2, $3 }'
fi

if [ -n "$max" ]; then
    too_long=$(printf '%s\n' "$lengths" | awk -v n="$max" '$1 > n')
    if [ -n "$too_long" ]; then
        echo "check-function-length: $(printf '%s\n' "$too_long" | grep -c .) function(s) over --max $max lines (docs/style.md \"Small functions\")"
        exit 1
    fi
    echo "check-function-length: no function over --max $max lines"
fi
