#!/usr/bin/env bash
# Resident memory of keystored over a long hit/miss mix (issue 5): 1000 branch keys, a cache of
# 500 entries, wrk picking a random key per request (about half miss: SQLite read + local KMS
# Decrypt + an LRU eviction), 256 connections. RSS is sampled every 30 s; it must stay flat.
#   bench/soak.sh [duration_seconds=600] [connections=256]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-600}
conns=${2:-256}
bin=${KEYSTORED:-./build/keystored}
command -v wrk >/dev/null || { echo "needs wrk" >&2; exit 1; }

tmp=$(mktemp -d)
port=18383
cleanup() {
    [ -n "${kpid:-}" ] && kill -TERM "$kpid" 2>/dev/null
    wait 2>/dev/null
    # With a sanitizer build (KEYSTORED=./build-asan/keystored), show its exit report.
    grep -A20 -E 'Sanitizer|runtime error' "$tmp/keystored.log" || true
    rm -rf "$tmp"
}
trap cleanup EXIT

token="ks_$(openssl rand -hex 32)"
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
cat >"$tmp/keystored.yaml" <<YAML
listen: 127.0.0.1:$port
kms_relationships: [{name: local, type: local, key_file: $tmp/kms.keys}]
key_stores:
  - {name: default, logical_key_store_name: default, kms_relationship: local,
     storage: {type: sqlite, path: $tmp/ks.db}}
cache: {capacity: 500, ttl_seconds: 600}
tenants:
  - {name: bench, token_sha256: "$hash", role: admin, key_stores: [default], kms_relationships: [local]}
YAML
"$bin" --config "$tmp/keystored.yaml" 2>"$tmp/keystored.log" &
kpid=$!
for _ in $(seq 50); do grep -q listening "$tmp/keystored.log" && break; sleep 0.1; done
base=http://127.0.0.1:$port/v1/keystores/default
for _ in $(seq 1000); do
    curl -sf -X POST -H "Authorization: Bearer $token" "$base/branch-keys" |
        sed 's/.*"branchKeyIdentifier":"\([^"]*\)".*/\1/'
    echo
done | grep -v '^$' >"$tmp/ids"
[ "$(wc -l <"$tmp/ids")" -eq 1000 ]

cat >"$tmp/mix.lua" <<LUA
local ids = {}
for line in io.lines("$tmp/ids") do ids[#ids + 1] = line end
local n = 0
function setup(thread) n = n + 1; thread:set("seed", n) end
function init(args) math.randomseed(os.time() * 7919 + seed) end
request = function()
  return wrk.format("GET", "/v1/keystores/default/branch-keys/" .. ids[math.random(#ids)] .. "/active",
                    {["Authorization"] = "Bearer $token"})
end
LUA

rss() { awk '/VmRSS/ {print $2}' "/proc/$kpid/status"; }
echo "soak: ${duration}s, $conns connections, 1000 keys, cache capacity 500, random key per request; $(nproc) cores"
echo "t=0s rss=$(rss) kB (after creating the keys)"
( start=$(date +%s); while sleep 30; do
    t=$(( $(date +%s) - start )); [ $t -gt "$duration" ] && break
    echo "t=${t}s rss=$(rss) kB"
  done ) &
sampler=$!
out=$(wrk -t2 -c"$conns" -d"${duration}s" --latency -s "$tmp/mix.lua" "http://127.0.0.1:$port")
kill $sampler 2>/dev/null || true
wait $sampler 2>/dev/null || true
echo "end rss=$(rss) kB"
echo "$out" | grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|^ +(50|99)%'
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" | grep -E '^keystored_(cache_(hits|misses|evictions|entries)|storage_reads_total|kms_requests_total\{relationship="local",operation="Decrypt"\})'
