#!/usr/bin/env bash
# Installs the Debian 12 packages keystored needs, only those missing.
#   install-deps.sh run    build + run
#   install-deps.sh test   build + every test suite (and their npm packages, from the lockfile)
#   install-deps.sh fuzz   build + `make fuzz` (tests/fuzz/README.md): Debian 12's clang 14, whose
#                          libFuzzer and sanitizer runtimes are in libclang-rt-14-dev (only a
#                          Recommends of clang-14, so named here), and llvm-14 for the
#                          llvm-symbolizer that turns a finding's stack into file:line
#   install-deps.sh container   make container-test: podman (vfs storage, chroot builds), mmdebstrap
#                          (the base image without a registry), runc (starts containers where crun
#                          cannot, e.g. hybrid cgroup hosts), curl (README "Container")
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

run_pkgs=(build-essential pkg-config libmicrohttpd-dev libjson-c-dev libyaml-dev libssl-dev
          libsqlite3-dev libcurl4-openssl-dev)
# prometheus: only its promtool, which checks GET /metrics (tests/http/metrics.mjs); nothing
# uses the prometheus service the package may start. openssl and nginx-light: the TLS and
# reverse-proxy suites (tests/http/tls.mjs, tests/http/proxy.mjs).
test_pkgs=(libcriterion-dev sqlite3 curl jq nodejs npm openjdk-17-jre-headless openssl nginx-light
           prometheus)
fuzz_pkgs=(clang libclang-rt-14-dev llvm-14)
container_pkgs=(podman mmdebstrap runc curl)

want=("${run_pkgs[@]}")
[ "${1:-run}" = test ] && want+=("${test_pkgs[@]}")
[ "${1:-run}" = fuzz ] && want+=("${fuzz_pkgs[@]}")
# The image builds keystored itself: the host needs only the container tools.
[ "${1:-run}" = container ] && want=("${container_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
    # node/npm may come from elsewhere than Debian (e.g. a preinstalled Node.js); accept them.
    case $p in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "${1:-run}" = test ]; then
    # The test peers and interop suites use AWS's SDK v3, which needs Node.js 20 or newer
    # (Debian 12's own nodejs package is 18: install a newer one, e.g. from NodeSource).
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 20 ]; then
        echo "the test suites need Node.js >= 20 (found $(node --version 2>/dev/null || echo none))" >&2
        exit 1
    fi
fi

if [ "${1:-run}" = test ] && [ -f package-lock.json ]; then
    if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
        npm ci --no-audit --no-fund --loglevel=error
    fi
fi
