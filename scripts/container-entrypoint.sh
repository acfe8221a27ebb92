#!/bin/sh
# The container's entrypoint (Dockerfile; README "Container"): keystored on the mounted
# configuration when there is one, else the embedded default under the data volume.
#
#   KEYSTORED_CONFIG  the configuration file (default /etc/keystored/keystored.yaml); used only
#                     if it exists
#   KEYSTORED_LISTEN  passed as --listen (default 0.0.0.0:8080, the exposed port, which the
#                     HEALTHCHECK asks); empty: the configuration's own server.listen
#
# Arguments starting with "-" are added to keystored's (e.g. --log-level debug); any other first
# argument is run as the command instead (e.g. `keystored token new`, `keystorectl ...`).
set -eu

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

config=${KEYSTORED_CONFIG:-/etc/keystored/keystored.yaml}
listen=${KEYSTORED_LISTEN-0.0.0.0:8080}

if [ -f "$config" ]; then
    set -- --config "$config" "$@"
else
    set -- --data-dir /var/lib/keystored "$@"
fi
if [ -n "$listen" ]; then
    set -- --listen "$listen" "$@"
fi
# exec: keystored is PID 1 and takes SIGTERM itself (it drains, then exits).
exec /usr/local/bin/keystored "$@"
