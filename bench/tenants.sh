#!/usr/bin/env bash
# The cache-hit GET active path with 1, 1,000 and 10,000 tenants configured, requests spread over
# 100 of them (each with its own token and cache partition), at 64 and 256 connections, against
# nginx serving a static file of the same bytes in the same run (issue 15). Also keystored's
# resident memory with each tenant count (bytes per tenant) and its start-up time.
#   bench/tenants.sh [duration_seconds=10] [keystored_threads=4] [tenant counts="1 1000 10000"]
# Needs wrk and nginx (apt-get install wrk nginx-light) and python3. Loopback only.
# ROUNDS=N repeats each keystored/nginx pair N times, alternating (the machine is shared: take
# medians). KEYSTORED_ARGS adds arguments (e.g. "--log-level warn": no access log). PERF=1 also records
# `perf record --call-graph ${PERF_CALLGRAPH:-fp}` of keystored during the 64-connection run of each count
# into $PERF_DIR (default /tmp/keystored-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
threads=${2:-4}
counts=${3:-1 1000 10000}
bin=${KEYSTORED:-./build/keystored}
for t in wrk nginx python3; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done

tmp=$(mktemp -d)
kport=18292
nport=18293
kpid=
cleanup() {
    [ -n "$kpid" ] && kill -TERM "$kpid" 2>/dev/null
    [ -f "$tmp/nginx.pid" ] && kill -TERM "$(cat "$tmp/nginx.pid")" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# config N: N tenants t0..t{N-1} (t0 admin), tokens in $tmp/tokens.txt (one per line).
make_config() {
    python3 - "$1" "$tmp" "$kport" "$threads" "${BASELINE:-0}" <<'PY'
import hashlib, secrets, sys
n, tmp, port, threads = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
# BASELINE=1: a build from before issue 15, which does not know max_entries_per_partition.
cap = "" if sys.argv[5] == "1" else ", max_entries_per_partition: 10"
tokens = ["ks_" + secrets.token_hex(32) for _ in range(n)]
with open(f"{tmp}/tokens.txt", "w") as f:
    f.write("\n".join(tokens) + "\n")
with open(f"{tmp}/keystored.yaml", "w") as f:
    f.write(f"""listen: 127.0.0.1:{port}
server: {{threads: {threads}}}
kms_relationships: [{{name: local, type: local, key_file: {tmp}/kms.keys}}]
key_stores:
  - {{name: default, logical_key_store_name: default, kms_relationship: local,
     storage: {{type: sqlite, path: {tmp}/ks.db}}}}
cache: {{capacity: 20000{cap}}}
tenants:
""")
    for i, t in enumerate(tokens):
        h = hashlib.sha256(t.encode()).hexdigest()
        role = "admin" if i == 0 else "reader"
        f.write(f'  - {{name: t{i}, token_sha256: "{h}", role: {role}, key_stores: [default], kms_relationships: [local]}}\n')
PY
}

# make_lua PATH FILE: a wrk script that cycles over the first 100 tokens (prebuilt requests: no
# per-request Lua formatting beyond picking one). nginx gets the same headers (it ignores them)
# and its file's path: wrk takes the path from the script, not from the URL.
make_lua() {
    python3 - "$tmp" "$1" "$2" <<'PY'
import sys
tmp, path, out = sys.argv[1], sys.argv[2], sys.argv[3]
tokens = open(f"{tmp}/tokens.txt").read().split()[:100]
with open(out, "w") as f:
    f.write("local tokens = {" + ",".join(f'"{t}"' for t in tokens) + "}\n")
    f.write(f'local path = "{path}"\n')
    f.write("""local reqs, i = {}, 0
init = function(args)
  for k, t in ipairs(tokens) do
    reqs[k] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. t})
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
""")
PY
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$kpid/status"; }

run() { # name url conns lua
    local out
    out=$(wrk -t2 -c"$3" -d"${duration}s" --latency -s "$4" "$2")
    printf '%-10s tenants=%-6s connections=%-4s requests/s=%-10s p50=%-8s p99=%-8s %s\n' "$1" \
        "$n" "$3" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
        "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
        "$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')"
}

start_nginx() {
    mkdir -p "$tmp/www"
    chmod 755 "$tmp" "$tmp/www"
    cat >"$tmp/nginx.conf" <<NGINX
worker_processes auto;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        root $tmp/www;
        location / { default_type application/json; add_header Cache-Control no-store; }
    }
}
NGINX
    nginx -c "$tmp/nginx.conf"
}

echo "hit path: GET .../active (cached), 100 tenants' tokens in rotation; keystored threads=$threads; nginx workers=auto; wrk -t2 -d${duration}s; $(nproc) cores; $(date -u +%FT%TZ)"
nginx_started=
for n in $counts; do
    rm -f "$tmp/ks.db" "$tmp/kms.keys"
    make_config "$n"
    t0=$(date +%s.%N)
    "$bin" --config "$tmp/keystored.yaml" ${KEYSTORED_ARGS:-} 2>"$tmp/keystored.log" &
    kpid=$!
    for _ in $(seq 1200); do curl -sf -o /dev/null "http://127.0.0.1:$kport/healthz" && break; sleep 0.05; done
    t1=$(date +%s.%N)
    rss_start=$(rss_kb)
    admin=$(head -1 "$tmp/tokens.txt")
    base=http://127.0.0.1:$kport/v1/keystores/default
    id=$(curl -sf -X POST -H "Authorization: Bearer $admin" "$base/branch-keys" |
        sed 's/.*"branchKeyIdentifier":"\([^"]*\)".*/\1/')
    path="/v1/keystores/default/branch-keys/$id/active"
    make_lua "$path" "$tmp/keystored.lua"
    make_lua /active.json "$tmp/nginx.lua"
    # Warm each of the (up to) 100 tenants' partitions: one miss each.
    head -100 "$tmp/tokens.txt" | while read -r tok; do
        curl -sf -o /dev/null -H "Authorization: Bearer $tok" "http://127.0.0.1:$kport$path"
    done
    if [ -z "$nginx_started" ]; then
        curl -sf -H "Authorization: Bearer $admin" "http://127.0.0.1:$kport$path" >"$tmp/www.json"
        start_nginx
        mv "$tmp/www.json" "$tmp/www/active.json"
        chmod 644 "$tmp/www/active.json"
        nginx_started=1
        sleep 0.3
    fi
    echo "tenants=$n start=$(python3 -c "print(f'{$t1-$t0:.2f}')")s RSS after start=${rss_start} kB, after warm-up=$(rss_kb) kB, config $(wc -c <"$tmp/keystored.yaml") bytes"
    for c in 64 256; do for round in $(seq "${ROUNDS:-1}"); do
        if [ "${PERF:-}" = 1 ] && [ $c = 64 ]; then
            mkdir -p "${PERF_DIR:=/tmp/keystored-perf}"
            perf record -q --call-graph "${PERF_CALLGRAPH:-fp}" -p "$kpid" -o "$PERF_DIR/perf-$n.data" -- sleep "$duration" 2>/dev/null &
            ppid=$!
            run keystored "http://127.0.0.1:$kport$path" $c "$tmp/keystored.lua"
            wait $ppid || true
        else
            run keystored "http://127.0.0.1:$kport$path" $c "$tmp/keystored.lua"
        fi
        run nginx "http://127.0.0.1:$nport/active.json" $c "$tmp/nginx.lua"
    done; done
    echo "keystored RSS after load: $(rss_kb) kB"
    curl -sf -H "Authorization: Bearer $(head -1 "$tmp/tokens.txt")" "http://127.0.0.1:$kport/metrics" |
        awk '/^keystored_cache_(hits|misses)_total/ {split($0, a, " "); s[substr($1, 1, index($1, "{") - 1)] += a[2]}
             /^keystored_kms_requests_total\{relationship="local",operation="Decrypt"\}/ {print}
             END {for (k in s) print k, s[k]}'
    kill -TERM "$kpid"
    wait "$kpid" || true
    kpid=
done
