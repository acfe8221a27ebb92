#!/usr/bin/env bash
# Keyring as a service (issue 13) on the cache-hit path, SQLite + local KMS, default cache:
#   1. wrk: POST .../keyring/wrap and POST .../keyring/unwrap against GET .../active in the same
#      run, at each connection count (goal: wrap and unwrap at least 0.8x GET active);
#   2. bench/keyring_batch.mjs: one unwrap-batch of 1,000 EDKs made under 10 versions of one key
#      (goal: under 50 ms and 10 storage reads), cold (versions not cached) then warm.
#   bench/keyring.sh [duration_seconds] [connections...]       (default: 10 s, 64 and 256)
# Prints one line per (connections, route); bench/RESULTS.md records the figures and the command.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
shift || true
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(64 256)
bin=${KEYSTORED:-./build/keystored}
command -v wrk >/dev/null || { echo "bench needs wrk (apt-get install wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
port=${KS_BENCH_PORT:-18183}
cleanup() { [ -n "${pid:-}" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

admin="ks_$(openssl rand -hex 32)"
keyring="ks_$(openssl rand -hex 32)"
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat >"$tmp/keystored.yaml" <<YAML
listen: 127.0.0.1:$port
kms_relationships: [{name: local, type: local, key_file: $tmp/kms.keys}]
key_stores:
  - {name: default, logical_key_store_name: default, kms_relationship: local,
     storage: {type: sqlite, path: $tmp/ks.db}}
tenants:
  - {name: admin, token_sha256: "$(sha "$admin")", role: admin, key_stores: [default], kms_relationships: [local],
     partition: shared}
  - {name: enc, token_sha256: "$(sha "$keyring")", role: keyring, key_stores: [default], kms_relationships: [local],
     partition: shared}
YAML
"$bin" --config "$tmp/keystored.yaml" 2>"$tmp/log" &
pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/log" && break; sleep 0.1; done
base=http://127.0.0.1:$port/v1/keystores/default
id=$(curl -sf -X POST -H "Authorization: Bearer $admin" "$base/branch-keys" | sed 's/.*"branchKeyIdentifier":"\([^"]*\)".*/\1/')
# Warm the cache: ACTIVE (GET and wrap) and the version (unwrap) are hits from here on.
curl -sf -o /dev/null -H "Authorization: Bearer $admin" "$base/branch-keys/$id/active"
wrap_body="{\"branchKeyIdentifier\":\"$id\",\"encryptionContext\":{\"tenant\":\"acme\"}}"
edk=$(curl -sf -X POST -H "Authorization: Bearer $keyring" -H 'Content-Type: application/json' \
    -d "$wrap_body" "$base/keyring/wrap" | sed 's/.*"encryptedDataKey":\({[^}]*}\).*/\1/')
unwrap_body="{\"encryptedDataKeys\":[$edk],\"encryptionContext\":{\"tenant\":\"acme\"}}"
curl -sf -o /dev/null -X POST -H "Authorization: Bearer $keyring" -H 'Content-Type: application/json' \
    -d "$unwrap_body" "$base/keyring/unwrap"
# wrk sends a body only through a Lua script.
lua() { printf 'wrk.method = "POST"\nwrk.body = [[%s]]\nwrk.headers["Content-Type"] = "application/json"\n' "$1" >"$2"; }
lua "$wrap_body" "$tmp/wrap.lua"
lua "$unwrap_body" "$tmp/unwrap.lua"

# keystored's CPU time so far (user + system, clock ticks): the CPU per request it gives is less
# sensitive to other load on the machine than requests/s.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

run() { # label token url [script]
    local out rps p50 p99 errs t0 t1 n us
    t0=$(cpu_ticks)
    out=$(wrk -t2 -c"$c" -d"${duration}s" --latency -H "Authorization: Bearer $2" ${4:+-s "$4"} "$3")
    t1=$(cpu_ticks)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    us=$(awk -v d="$((t1 - t0))" -v n="$n" -v hz="$hz" 'BEGIN {printf "%.1f", n ? d * 1e6 / hz / n : 0}')
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    printf 'connections=%-4s %-10s requests/s=%-10s p50=%-9s p99=%-9s keystored-cpu/req=%-6s us %s\n' \
        "$c" "$1" "$rps" "$p50" "$p99" "$us" "$errs"
}

echo "keystored $("$bin" --version | awk '{print $2}'), $(nproc) cores, default cache (hits), wrk -t2 -d${duration}s"
for c in "${conns[@]}"; do
    run "GET-active" "$admin" "$base/branch-keys/$id/active"
    run "wrap" "$keyring" "$base/keyring/wrap" "$tmp/wrap.lua"
    run "unwrap" "$keyring" "$base/keyring/unwrap" "$tmp/unwrap.lua"
done
node bench/keyring_batch.mjs "$base" "$admin" "$keyring"
