#!/usr/bin/env bash
# check-layers.sh - the include graph of the production sources obeys the layers
# (docs/architecture.md section 2; docs/style.md "Layout shows the architecture").
#
#   scripts/check-layers.sh [ROOT]      ROOT defaults to the repository (this script's parent)
#
# Reads every `#include "..."` in the .c and .h files under the ranked folders below (tests/,
# bench/ and generated code are not production and are not scanned) and fails, printing
# file:line and the rule broken, when
#   - a file includes a header of a folder ranked higher than its own (an upward edge),
#   - a file includes a header of another folder of the same rank (storage/ and kms/ are
#     siblings: neither may include the other),
#   - a file includes a header outside the ranked folders (tests/ support headers, say),
#   - the files include each other in a loop. x.c and x.h count as one unit, so
#     keystore/cache.c -> keystore/keystore.h plus keystore/keystore.c -> keystore/cache.h is a
#     cycle between the units keystore/cache and keystore/keystore.
# Angle-bracket includes (system and library headers) are ignored. A quoted include without a
# folder ("x.h") is taken relative to the including file's folder.
#
# Exit status: 0 clean, 1 violations found, 2 usage error.
set -euo pipefail

root=${1:-"$(cd "$(dirname "$0")/.." && pwd)"}
if [ ! -d "$root" ]; then
    echo "check-layers: no such directory: $root" >&2
    exit 2
fi
cd "$root"

# Rank of each production folder, top to bottom; an include must go to a strictly lower rank
# or stay inside its own folder.
# cli/ (keystorectl) is a client of the REST API, not a layer of the server: top rank, and it may
# include common/ only (checked below).
ranks="cli=9 server=8 handlers=7 keyring=6 keystore=5 storage=4 kms=4 config=3 aws=2 common=1"

folders=()
for pair in $ranks; do
    [ -d "${pair%%=*}" ] && folders+=("${pair%%=*}")
done
if [ ${#folders[@]} -eq 0 ]; then
    echo "check-layers: none of the ranked folders exists under $root" >&2
    exit 2
fi

mapfile -t files < <(find "${folders[@]}" -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)

awk -v ranks="$ranks" -v nfiles="${#files[@]}" '
function top(path) { sub(/\/.*/, "", path); return path }
function unit(path) { sub(/\.[ch]$/, "", path); return path }
function violation(where, what) {
    printf "%s: %s\n", where, what
    bad++
}
function add_node(u) {
    if (!(u in seen)) { seen[u] = 1; nodes[++nnodes] = u; color[u] = 0 }
}
# Depth-first search; a grey node met again closes a cycle, printed with the include line of
# every edge on it. Locals after the two spaces.
function dfs(u, depth,    n, list, i, v, j, path, k) {
    color[u] = 1
    stack[depth] = u
    pos[u] = depth
    n = split(adj[u], list, " ")
    for (i = 1; i <= n; i++) {
        v = list[i]
        if (color[v] == 0) {
            dfs(v, depth + 1)
        } else if (color[v] == 1) {
            path = ""
            for (j = pos[v]; j <= depth; j++) path = path stack[j] " -> "
            printf "include cycle: %s%s (rule: no include cycles between files; x.c and x.h are one unit)\n", path, v
            for (j = pos[v]; j <= depth; j++) {
                k = (j < depth) ? stack[j + 1] : v
                printf "  %s\n", where_edge[stack[j] SUBSEP k]
            }
            bad++
        }
    }
    color[u] = 2
}
BEGIN {
    n = split(ranks, pairs, " ")
    for (i = 1; i <= n; i++) {
        split(pairs[i], kv, "=")
        rank[kv[1]] = kv[2] + 0
    }
    bad = 0
}
FNR == 1 { add_node(unit(FILENAME)) }
/^[ \t]*#[ \t]*include[ \t]*"/ {
    target = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*"/, "", target)
    sub(/".*$/, "", target)
    if (index(target, "/") == 0) {
        dir = FILENAME
        sub(/\/[^\/]*$/, "", dir)
        target = dir "/" target
    }
    where = FILENAME ":" FNR
    from = top(FILENAME)
    to = top(target)
    if (!(to in rank)) {
        violation(where, "#include \"" target "\": " to "/ is not a production folder (rule: production code includes only cli server handlers keyring keystore storage kms config aws common)")
        next
    }
    if (from == "cli" && to != "cli" && to != "common") {
        violation(where, "#include \"" target "\": cli/ is a client of the REST API and includes only common/ (rule: keystorectl links none of the server layers)")
    } else if (to != from && rank[to] > rank[from]) {
        violation(where, "#include \"" target "\": upward include, " from "/ (rank " rank[from] ") must not include " to "/ (rank " rank[to] ") (rule: server > handlers > keyring > keystore > storage, kms > config > aws > common; includes go down only)")
    } else if (to != from && rank[to] == rank[from]) {
        violation(where, "#include \"" target "\": " from "/ and " to "/ are siblings of one rank and must not include each other (rule: storage/ and kms/ do not include each other)")
    }
    u = unit(FILENAME)
    v = unit(target)
    add_node(u)
    add_node(v)
    if (u != v && !((u SUBSEP v) in where_edge)) {
        where_edge[u SUBSEP v] = where ": #include \"" target "\""
        adj[u] = adj[u] " " v
    }
}
END {
    for (i = 1; i <= nnodes; i++)
        if (color[nodes[i]] == 0) dfs(nodes[i], 1)
    if (bad > 0) {
        printf "check-layers: %d violation(s) (docs/architecture.md section 2)\n", bad
        exit 1
    }
    printf "check-layers: %d files, no upward include, no cycle\n", nfiles
}
' "${files[@]}"
