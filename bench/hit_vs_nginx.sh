#!/usr/bin/env bash
# The cache hit path of GetActiveBranchKey under wrk at 64 and 256 connections, side by side with
# nginx serving a static JSON file of the same bytes on the same machine (issue 5), plus
# keystored's resident memory at 256 connections.
#   bench/hit_vs_nginx.sh [duration_seconds=10] [keystored_threads=4]
# Needs wrk and nginx (apt-get install wrk nginx-light). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
threads=${2:-4}
bin=${KEYSTORED:-./build/keystored}
for t in wrk nginx; do command -v $t >/dev/null || { echo "needs $t" >&2; exit 1; }; done

tmp=$(mktemp -d)
kport=18282
nport=18283
cleanup() {
    [ -n "${kpid:-}" ] && kill -TERM "$kpid" 2>/dev/null
    [ -f "$tmp/nginx.pid" ] && kill -TERM "$(cat "$tmp/nginx.pid")" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# keystored: SQLite + local KMS with the given number of server threads.
token="ks_$(openssl rand -hex 32)"
hash=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
cat >"$tmp/keystored.yaml" <<YAML
listen: 127.0.0.1:$kport
server: {threads: $threads}
kms_relationships: [{name: local, type: local, key_file: $tmp/kms.keys}]
key_stores:
  - {name: default, logical_key_store_name: default, kms_relationship: local,
     storage: {type: sqlite, path: $tmp/ks.db}}
tenants:
  - {name: bench, token_sha256: "$hash", role: admin, key_stores: [default], kms_relationships: [local]}
YAML
"$bin" --config "$tmp/keystored.yaml" 2>"$tmp/keystored.log" &
kpid=$!
for _ in $(seq 50); do grep -q listening "$tmp/keystored.log" && break; sleep 0.1; done
base=http://127.0.0.1:$kport/v1/keystores/default
id=$(curl -sf -X POST -H "Authorization: Bearer $token" "$base/branch-keys" | sed 's/.*"branchKeyIdentifier":"\([^"]*\)".*/\1/')
url="$base/branch-keys/$id/active"
# The same bytes for nginx (this is a throwaway key of a throwaway store).
mkdir -p "$tmp/www"
curl -sf -H "Authorization: Bearer $token" "$url" >"$tmp/www/active.json"
chmod 755 "$tmp" "$tmp/www" && chmod 644 "$tmp/www/active.json" # nginx workers run as www-data
bytes=$(wc -c <"$tmp/www/active.json")

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
sleep 0.3
curl -sf "http://127.0.0.1:$nport/active.json" | cmp - "$tmp/www/active.json"

rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$kpid/status"; }
run() { # name url conns [auth]
    local out
    if [ -n "${4:-}" ]; then
        out=$(wrk -t2 -c"$3" -d"${duration}s" --latency -H "Authorization: Bearer $token" "$2")
    else
        out=$(wrk -t2 -c"$3" -d"${duration}s" --latency "$2")
    fi
    printf '%-9s connections=%-4s requests/s=%-10s p50=%-8s p99=%-8s %s\n' "$1" "$3" \
        "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(awk '$1=="50%" {print $2}' <<<"$out")" \
        "$(awk '$1=="99%" {print $2}' <<<"$out")" "$(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr '\n' ' ')"
}

echo "hit path: GET .../active (cached), body $bytes bytes; keystored threads=$threads; nginx workers=auto; wrk -t2 -d${duration}s; $(nproc) cores"
echo "keystored RSS before load: $(rss)"
for c in 64 256; do
    run keystored "$url" $c auth
    [ $c = 256 ] && echo "keystored RSS right after 256 connections: $(rss)"
    run nginx "http://127.0.0.1:$nport/active.json" $c
done
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$kport/metrics" | grep -E '^keystored_(cache_(hits|misses)_total|kms_requests_total\{relationship="local",operation="Decrypt"\})'
