#!/bin/sh
# Installs the Debian packages stratq needs to build, test and run.
# Silent when everything is present; as root it installs what is missing,
# otherwise it prints the apt-get command to run and fails.
set -eu
pkgs="build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev
libcurl4-openssl-dev libcmocka-dev libpython3-dev libseccomp-dev redis-server python3 python3-numpy
python3-pandas python3-pytest python3-redis python3-rq clang-14 libclang-rt-14-dev wrk curl
docker-compose python3-jsonschema python3-yaml shellcheck jq yamllint
python3-celery python3-matplotlib"
missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "stratq needs these Debian packages:$missing" >&2
    echo "install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
