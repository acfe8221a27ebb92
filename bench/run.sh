#!/usr/bin/env bash
# GetActiveBranchKey under wrk on SQLite + local KMS (the embedded default's backends) without
# the cache: every request is a SQLite read + a local-KMS AES-GCM decrypt.
#   bench/run.sh [duration_seconds] [connections...]
# Prints one line per connection count; bench/RESULTS.md records the figures and the command.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
shift || true
conns=("$@")
[ ${#conns[@]} -gt 0 ] || conns=(16 64)
bin=${KEYSTORED:-./build/keystored}
command -v wrk >/dev/null || { echo "bench needs wrk (apt-get install wrk)" >&2; exit 1; }

tmp=$(mktemp -d)
port=18181
cleanup() { [ -n "${pid:-}" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# The uncached path on purpose (cache capacity 0, the MPL's "No" cache): the cached one is
# bench/hit_vs_nginx.sh.
token="ks_$(openssl rand -hex 32)"
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
cat >"$tmp/keystored.yaml" <<YAML
listen: 127.0.0.1:$port
kms_relationships: [{name: local, type: local, key_file: $tmp/kms.keys}]
key_stores:
  - {name: default, logical_key_store_name: default, kms_relationship: local,
     storage: {type: sqlite, path: $tmp/ks.db}}
cache: {capacity: 0}
tenants:
  - {name: bench, token_sha256: "$hash", role: admin, key_stores: [default], kms_relationships: [local]}
YAML
"$bin" --config "$tmp/keystored.yaml" 2>"$tmp/log" &
pid=$!
for _ in $(seq 50); do grep -q listening "$tmp/log" && break; sleep 0.1; done
base=http://127.0.0.1:$port/v1/keystores/default
id=$(curl -sf -X POST -H "Authorization: Bearer $token" "$base/branch-keys" | sed 's/.*"branchKeyIdentifier":"\([^"]*\)".*/\1/')
curl -sf -o /dev/null -H "Authorization: Bearer $token" "$base/branch-keys/$id/active"

echo "keystored $("$bin" --version | awk '{print $2}'), $(nproc) cores, cache capacity 0, wrk -t2 -d${duration}s, GET .../branch-keys/{id}/active"
for c in "${conns[@]}"; do
    out=$(wrk -t2 -c"$c" -d"${duration}s" --latency -H "Authorization: Bearer $token" \
        "$base/branch-keys/$id/active")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    errs=$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ' || true)
    echo "connections=$c requests/s=$rps p50=$p50 p99=$p99 ${errs}"
done
