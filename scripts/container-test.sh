#!/usr/bin/env bash
# make container-test (README "Container"): builds the base image (once; scripts/container-base.sh)
# and keystored:latest from the Dockerfile, checks the image's metadata, size and contents, then
# runs it and talks to it: /healthz, /readyz, the image's HEALTHCHECK command, the admin token of
# the first start, one CreateKey and two reads, a clean stop, and a restart on the same data.
#
# Running the image: `podman run` first (the default runtime, then runc with explicit limits
# where crun cannot start containers, e.g. on a hybrid cgroup v1/v2 host without
# CAP_SYS_RESOURCE); when no container starts, the image's filesystem (`podman image mount`) is
# copied and its entrypoint started under `chroot --userspec` as the image's user.
# CONTAINER_TEST_PATH=run|chroot forces one path. Needs root (vfs storage, chroot) and curl.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    echo "container-test: run as root (podman's vfs storage, chroot, mknod)" >&2
    exit 1
fi
cd "$(dirname "$0")/.."

PODMAN=${PODMAN:-podman --storage-driver vfs}
IMAGE=${CONTAINER_TEST_IMAGE:-keystored:latest}
BASE=localhost/debian:bookworm-slim
MAX_ADDED_BYTES=$((40 * 1000 * 1000))
NAME=keystored-container-test
WANT_PATH=${CONTAINER_TEST_PATH:-}

tmp=$(mktemp -d)
server_pid=""
run_podman=""
failures=0

cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; fi
    if [ -n "$run_podman" ]; then $run_podman rm -f -v "$NAME" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "  ok   $*"; }
bad() {
    echo "  FAIL $*"
    failures=$((failures + 1))
}
check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
inspect() { $PODMAN image inspect --format "$1" "$2"; }

# ---- build -------------------------------------------------------------------------------
./scripts/container-base.sh
echo "container-test: building $IMAGE"
start=$(date +%s)
# --format docker keeps HEALTHCHECK (the OCI format has no such field).
nice -n 10 $PODMAN build --layers --pull=never --isolation chroot --format docker -t "$IMAGE" . \
    >"$tmp/build.log" 2>&1 || {
    tail -40 "$tmp/build.log"
    echo "container-test: build failed" >&2
    exit 1
}
build_s=$(($(date +%s) - start))

# ---- the image's metadata ----------------------------------------------------------------
echo "container-test: image checks"
# An OCI-format build has none: HealthCheck is then null.
health=""
if [ "$(inspect '{{json .HealthCheck}}' "$IMAGE")" != null ]; then
    health=$(inspect '{{range .HealthCheck.Test}}{{.}} {{end}}' "$IMAGE")
    health=${health% }
fi
check "HEALTHCHECK present: $health" test "${health%% *}" = CMD -a -n "${health#CMD}"
case $health in */healthz* | *" health") ok "HEALTHCHECK asks /healthz" ;;
*) bad "HEALTHCHECK does not ask /healthz" ;; esac

user=$(inspect '{{.Config.User}}' "$IMAGE")
uid=${user%%:*}
check "USER $user is numeric and not root" test -n "$uid" -a "$uid" != 0 -a "${uid//[0-9]/}" = ""

volumes=$(inspect '{{range $k, $v := .Config.Volumes}}{{$k}} {{end}}' "$IMAGE")
for v in /var/lib/keystored /etc/keystored; do
    case " $volumes" in *" $v "*) ok "VOLUME $v" ;; *) bad "VOLUME $v missing ($volumes)" ;; esac
done
ports=$(inspect '{{range $k, $v := .Config.ExposedPorts}}{{$k}} {{end}}' "$IMAGE")
case " $ports" in *" 8080/tcp "*) ok "EXPOSE 8080" ;; *) bad "8080/tcp not exposed ($ports)" ;; esac

# Added size: the image's bytes minus the base's, valid only if the image is built on that base.
base_size=$(inspect '{{.Size}}' "$BASE")
image_size=$(inspect '{{.Size}}' "$IMAGE")
added=$((image_size - base_size))
check "built on $BASE" test "$(inspect '{{index .RootFS.Layers 0}}' "$IMAGE")" = \
    "$(inspect '{{index .RootFS.Layers 0}}' "$BASE")"
echo "  base $base_size bytes, image $image_size bytes, added $added bytes, build ${build_s}s"
check "layers add $added bytes < $MAX_ADDED_BYTES" test "$added" -lt "$MAX_ADDED_BYTES"

# ---- the image's files -------------------------------------------------------------------
mnt=$($PODMAN image mount "$IMAGE")
dpkg-query --admindir="$mnt/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Package}\n' |
    awk '$1 == "ii" {print $2}' | sed 's/:.*//' >"$tmp/packages"
tools=$(grep -E -- '-dev$|^(gcc|g\+\+|cpp|clang|binutils|make|build-essential|pkg-config|dpkg-dev)(-[0-9.]+)?$' \
    "$tmp/packages" || true)
check "no compiler or -dev package ($(wc -l <"$tmp/packages") packages)" test -z "$tools"
[ -z "$tools" ] || echo "    found:" $tools
check "no cc in /usr/bin" test ! -e "$mnt/usr/bin/cc" -a ! -e "$mnt/usr/bin/gcc"
check "no apt lists left" test -z "$(find "$mnt/var/lib/apt/lists" -mindepth 1 -maxdepth 1 \
    ! -name lock ! -name partial 2>/dev/null)"
check "/var/lib/keystored owned by $uid, mode 700" \
    test "$(stat -c '%u %a' "$mnt/var/lib/keystored")" = "$uid 700"
# A copy for what runs inside (ldd, the chroot path): nothing may write to the image's layers.
ROOT=$tmp/rootfs
mkdir -p "$ROOT"
cp -a "$mnt/." "$ROOT/"
$PODMAN image unmount "$IMAGE" >/dev/null
# A runtime mounts /dev; the chroot needs the nodes (the mmdebstrap base already has them).
[ -c "$ROOT/dev/null" ] || mknod -m 666 "$ROOT/dev/null" c 1 3
[ -c "$ROOT/dev/urandom" ] || mknod -m 666 "$ROOT/dev/urandom" c 1 9
[ -c "$ROOT/dev/random" ] || mknod -m 666 "$ROOT/dev/random" c 1 8
for b in keystored keystorectl; do
    check "$b resolves every library in the image" \
        sh -c "chroot '$ROOT' ldd /usr/local/bin/$b >'$tmp/ldd' && ! grep -q 'not found' '$tmp/ldd'"
done

# ---- running it: podman run --------------------------------------------------------------
# start_* set URL and leave the server running; stop_* stop it and check a clean exit;
# health_cmd runs the image's HEALTHCHECK; logs prints what the server said.
wait_run() { # URL once /healthz answers; 1 if the container is not running
    local port
    for _ in $(seq 100); do
        [ "$($run_podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || return 1
        port=$($run_podman port "$NAME" 8080/tcp 2>/dev/null | sed -n 's/.*:\([0-9]*\)$/\1/p' | head -1)
        URL=http://127.0.0.1:$port
        [ -n "$port" ] && curl -s -o /dev/null -m 1 "$URL/healthz" && return 0
        sleep 0.2
    done
    return 1
}
start_run() {
    $run_podman rm -f -v "$NAME" >/dev/null 2>&1 || true
    $run_podman run -d --name "$NAME" "$@" -p 127.0.0.1::8080 "$IMAGE" >"$tmp/run.out" 2>&1 &&
        wait_run
}
restart_run() { $run_podman start "$NAME" >/dev/null 2>>"$tmp/podman.err" && wait_run; }
stop_run() {
    $run_podman stop -t 30 "$NAME" >/dev/null 2>>"$tmp/podman.err"
    test "$($run_podman inspect --format '{{.State.ExitCode}}' "$NAME")" = 0
}
# One command in the image instead of the server (the entrypoint passes it through).
cmd_run() { $run_podman run --rm "${RUN_EXTRA[@]}" "$IMAGE" "$@"; }
# The server again, on a fresh data volume, with $tmp/conf as /etc/keystored.
start_config_run() { start_run "${RUN_EXTRA[@]}" -v "$tmp/conf:/etc/keystored:ro"; }
health_run() { $run_podman healthcheck run "$NAME" >/dev/null; }
logs_run() { $run_podman logs "$NAME" 2>&1; }

try_podman_run() {
    local n
    n=$(ulimit -Hn)
    run_podman=$PODMAN
    RUN_EXTRA=()
    if start_run; then
        RAN="podman run"
        return 0
    fi
    echo "  podman run: $(grep -v systemd "$tmp/run.out" | tail -1)"
    if command -v runc >/dev/null; then
        # crun refuses hybrid cgroup hosts; the default limits (1048576) need CAP_SYS_RESOURCE.
        run_podman="$PODMAN --runtime runc"
        RUN_EXTRA=(--ulimit "nofile=$n:$n" --ulimit nproc=4096:4096)
        if start_run "${RUN_EXTRA[@]}"; then
            RAN="podman run (runtime runc)"
            return 0
        fi
        echo "  podman run (runc): $(grep -v systemd "$tmp/run.out" | tail -1)"
    fi
    $run_podman rm -f -v "$NAME" >/dev/null 2>&1 || true
    run_podman=""
    return 1
}

# ---- running it: chroot into the image's files as the image's user ----------------------
: >"$tmp/server.log.all"
start_chroot() {
    local envs=() entry=() e port=""
    while IFS= read -r e; do envs+=("$e"); done < <(inspect '{{range .Config.Env}}{{.}}{{"\n"}}{{end}}' "$IMAGE")
    # Port 0: the kernel picks a free one; keystored logs it.
    envs+=(KEYSTORED_LISTEN=127.0.0.1:0)
    mapfile -t entry < <(inspect '{{range .Config.Entrypoint}}{{.}}{{"\n"}}{{end}}' "$IMAGE")
    env -i "${envs[@]}" chroot --userspec="$user" "$ROOT" "${entry[@]}" >>"$tmp/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        port=$(grep '"event":"listening"' "$tmp/server.log" | tail -1 | sed -n 's/.*"port":\([0-9]*\).*/\1/p')
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    [ -n "$port" ] || return 1
    URL=http://127.0.0.1:$port
}
restart_chroot() {
    cat "$tmp/server.log" >>"$tmp/server.log.all"
    : >"$tmp/server.log"
    start_chroot
}
stop_chroot() {
    local rc=0
    kill -TERM "$server_pid"
    wait "$server_pid" || rc=$?
    server_pid=""
    test "$rc" = 0
}
health_chroot() {
    local envs=() e
    [ -n "$health" ] || return 1
    while IFS= read -r e; do envs+=("$e"); done < <(inspect '{{range .Config.Env}}{{.}}{{"\n"}}{{end}}' "$IMAGE")
    # The HEALTHCHECK's command as written in the image, against the port keystored took.
    # shellcheck disable=SC2086
    env -i "${envs[@]}" KEYSTORED_URL="$URL" chroot --userspec="$user" "$ROOT" ${health#CMD } >/dev/null
}
cmd_chroot() {
    env -i PATH=/usr/local/bin:/usr/bin:/bin "$(command -v chroot)" --userspec="$user" "$ROOT" \
        /usr/local/bin/keystored-entrypoint "$@"
}
start_config_chroot() {
    find "$ROOT/var/lib/keystored" -mindepth 1 -delete
    cp "$tmp/conf/keystored.yaml" "$ROOT/etc/keystored/keystored.yaml"
    : >"$tmp/server.log.all"
    : >"$tmp/server.log"
    start_chroot
}
logs_chroot() { cat "$tmp/server.log.all" "$tmp/server.log"; }

# ---- the checks, on either path ----------------------------------------------------------
fails() { ! "$@"; }
status() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$@"; }
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

exercise() {
    local token id version key1 key2 key3
    check "GET /healthz 200" test "$(status "$URL/healthz")" = 200
    check "GET /readyz 200" test "$(status "$URL/readyz")" = 200
    check "HEALTHCHECK command succeeds" "$HEALTH"
    "$LOGS" >"$tmp/all.log"
    token=$(sed -n 's/^admin token: \(ks_[0-9a-f]*\)$/\1/p' "$tmp/all.log" | sed -n 1p)
    check "admin token printed on first start" test -n "$token"
    check "no token: 401" test "$(status -X PUT "$URL/v1/keystores/default")" = 401
    check "CreateKeyStore 200" test "$(status -X PUT -H "Authorization: Bearer $token" \
        "$URL/v1/keystores/default")" = 200
    id=container-test-$$
    check "CreateKey 201" test "$(status -X POST -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' \
        -d "{\"branchKeyIdentifier\":\"$id\",\"encryptionContext\":{\"test\":\"container\"}}" \
        "$URL/v1/keystores/default/branch-keys")" = 201
    curl -s -m 5 -H "Authorization: Bearer $token" \
        "$URL/v1/keystores/default/branch-keys/$id/active" >"$tmp/active.json"
    version=$(field branchKeyVersion <"$tmp/active.json")
    key1=$(field branchKey <"$tmp/active.json")
    check "GetActiveBranchKey returns the key" test -n "$version" -a -n "$key1"
    key2=$(curl -s -m 5 -H "Authorization: Bearer $token" \
        "$URL/v1/keystores/default/branch-keys/$id/versions/$version" | field branchKey)
    check "GetBranchKeyVersion returns the same key" test -n "$key2" -a "$key1" = "$key2"

    check "SIGTERM: clean stop, exit 0" "$STOP"
    check "HEALTHCHECK command fails while stopped" fails "$HEALTH" 2>/dev/null
    check "restart" "$RESTART"
    check "restart on the same data: /healthz 200" test "$(status "$URL/healthz")" = 200
    key3=$(curl -s -m 5 -H "Authorization: Bearer $token" \
        "$URL/v1/keystores/default/branch-keys/$id/versions/$version" | field branchKey)
    check "after restart: the first token and the same key" test -n "$key3" -a "$key1" = "$key3"
    "$LOGS" >"$tmp/all.log"
    check "the admin token printed once only" test "$(grep -c '^admin token: ' "$tmp/all.log")" = 1
    check "no key bytes in the server's log" fails grep -qF -- "$key1" "$tmp/all.log"
    check "stop after restart, exit 0" "$STOP"
}

# A mounted configuration: used instead of the embedded default, with a token of
# `keystored token new` run in the image, and a key store only the file names.
exercise_config() {
    local out token hash
    out=$("$CMD" keystored token new 2>&1) || true
    token=$(printf '%s\n' "$out" | sed -n 's/^token: \(ks_[0-9a-f]*\)$/\1/p')
    hash=$(printf '%s\n' "$out" | sed -n 's/^token_sha256: "\([0-9a-f]*\)"$/\1/p')
    check "keystored token new runs in the image" test -n "$token" -a ${#hash} = 64
    mkdir -p "$tmp/conf"
    chmod 755 "$tmp/conf"
    cat >"$tmp/conf/keystored.yaml" <<YAML
listen: 127.0.0.1:1
kms_relationships:
  - name: local
    type: local
    key_file: /var/lib/keystored/local-kms.keys
    kms_configuration:
      kms_key_arn: "arn:aws:kms:local:000000000000:key/6f3c1a52-0d7e-4b8a-9c11-2e5d7a9b4c60"
key_stores:
  - name: fromfile
    logical_key_store_name: fromfile
    kms_relationship: local
    storage: {type: sqlite, path: /var/lib/keystored/fromfile.db}
tenants:
  - name: operator
    token_sha256: "$hash"
    role: admin
    key_stores: [fromfile]
    kms_relationships: [local]
    partition: "tenant:operator"
YAML
    chmod 644 "$tmp/conf/keystored.yaml"
    if ! "$START_CONFIG"; then
        bad "keystored did not start on the mounted configuration"
        "$LOGS" | tail -5
        return
    fi
    ok "started on /etc/keystored/keystored.yaml (listen overridden: $URL)"
    "$LOGS" >"$tmp/all.log"
    check "no admin token printed with a configuration" fails grep -q '^admin token: ' "$tmp/all.log"
    check "the file's key store: CreateKeyStore 200" test "$(status -X PUT \
        -H "Authorization: Bearer $token" "$URL/v1/keystores/fromfile")" = 200
    check "the file's key store: CreateKey 201" test "$(status -X POST \
        -H "Authorization: Bearer $token" "$URL/v1/keystores/fromfile/branch-keys")" = 201
    check "the embedded default's key store is not there" test "$(status \
        -H "Authorization: Bearer $token" "$URL/v1/keystores/default")" != 200
    check "stop, exit 0" "$STOP"
}

echo "container-test: running the image"
RAN=""
RUN_EXTRA=()
if [ "$WANT_PATH" != chroot ] && try_podman_run; then
    HEALTH=health_run LOGS=logs_run STOP=stop_run RESTART=restart_run
    CMD=cmd_run START_CONFIG=start_config_run
elif [ "$WANT_PATH" != run ]; then
    RAN="chroot --userspec=$user (podman image mount)"
    start_chroot || { cat "$tmp/server.log"; bad "keystored did not start under chroot"; }
    HEALTH=health_chroot LOGS=logs_chroot STOP=stop_chroot RESTART=restart_chroot
    CMD=cmd_chroot START_CONFIG=start_config_chroot
else
    bad "podman run failed and CONTAINER_TEST_PATH=run"
fi
if [ -n "$RAN" ] && [ -n "${URL:-}" ]; then
    echo "  path: $RAN, $URL"
    exercise
    exercise_config
fi

echo "container-test: base $base_size bytes, image $image_size bytes, added $added bytes" \
    "(limit $MAX_ADDED_BYTES), build ${build_s}s, ran by: ${RAN:-nothing}"
if [ "$failures" -ne 0 ]; then
    echo "container-test: $failures check(s) failed" >&2
    exit 1
fi
echo "container-test: all checks passed"
