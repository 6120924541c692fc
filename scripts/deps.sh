#!/bin/sh
# Installs the Debian packages one of stratq's make targets needs:
#
#   scripts/deps.sh build   compiler, pkg-config and the -dev libraries (`make`)
#   scripts/deps.sh demo    build + redis-server, python3, numpy, pandas (`make demo`)
#   scripts/deps.sh test    demo + what `make test` uses (cmocka, clang for the
#                           fuzzers, pytest, Go for tests/deploy, chromium, ...)
#   scripts/deps.sh browser chromium and python3-websocket (`make browser-test`)
#   scripts/deps.sh bench   demo + RQ, Celery, wrk, matplotlib (`make bench`)
#   scripts/deps.sh images  debootstrap (`make images` and `make fresh-check`, to make debian:bookworm-slim; Docker must be there)
#   scripts/deps.sh all     every group but images
#
# Silent when everything is there. As root it installs what is missing with
# apt-get; otherwise it prints the apt-get command to run and fails, naming
# the packages.
set -eu

build="build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev
libcurl4-openssl-dev libpython3-dev libseccomp-dev"
demo="$build redis-server python3 python3-numpy python3-pandas"
test="$demo libcmocka-dev clang-14 clang-format-14 libclang-rt-14-dev python3-pytest python3-pytest-xdist python3-redis
python3-yaml golang-go docker-compose shellcheck yamllint jq curl openssl"
browser="python3 chromium python3-websocket fonts-dejavu-core"
test="$test $browser"
images="debootstrap"
bench="$demo python3-redis python3-rq python3-celery python3-matplotlib wrk curl jq"

pkgs=""
[ $# -gt 0 ] || set -- demo
for group in "$@"; do
    case $group in
    build) pkgs="$pkgs $build" ;;
    demo) pkgs="$pkgs $demo" ;;
    test) pkgs="$pkgs $test" ;;
    bench) pkgs="$pkgs $bench" ;;
    browser) pkgs="$pkgs $browser" ;;
    images) pkgs="$pkgs $images" ;;
    all) pkgs="$pkgs $test $bench" ;;
    *)
        echo "deps.sh: unknown group '$group' (build, demo, test, browser, bench, images or all)" >&2
        exit 2
        ;;
    esac
done

missing=""
# shellcheck disable=SC2086
for p in $(printf '%s\n' $pkgs | sort -u); do
    if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "stratq ($*) needs these Debian packages:$missing" >&2
    echo "install them with: sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "installing ($*):$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >&2
