#!/bin/sh
# `make bench`: runs the benchmarks in bench/ against the release build.
set -eu
cd "$(dirname "$0")/.."
exec /usr/bin/python3 bench/throughput.py "$@"
