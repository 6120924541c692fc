#!/usr/bin/env bash
# Makes a throwaway CA and the certificates of the TLS development stack
# (config/dev/docker-compose.tls.yaml; docs/deploy.md, "Redis over TLS in
# Compose") with the openssl command line:
#
#   ca.crt ca.key           the CA (its key stays 0600, for the host only)
#   redis.crt redis.key     Redis' server certificate: DNS cache, localhost,
#                           IP 127.0.0.1 (and --name NAME ...)
#   client.crt client.key   the client certificate of the API and the workers
#                           (Redis asks for one: tls-auth-clients yes)
#
# For development only: the keys the containers read are made readable by
# everyone (0644), since the containers run as other uids (Redis 999,
# stratq 10001) than the host user who owns the files.
set -euo pipefail

prog=dev-certs.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

usage() {
    cat <<EOF
Usage: scripts/$prog [--dir DIR] [--days N] [--name DNSNAME]... [--force]

Makes a throwaway CA, a server certificate for Redis and a client
certificate for the API and the workers, in DIR (default
config/dev/certs, where config/dev/docker-compose.tls.yaml mounts them
from; git ignores it).

Options
  --dir DIR       where to write them
  --days N        validity in days (default 30)
  --name DNSNAME  another name for Redis' certificate (repeatable); it
                  always has cache, localhost and 127.0.0.1
  --force         replace certificates already in DIR (the default is to
                  refuse, so that a running stack's CA is not changed
                  under it)
EOF
}

dir="$ROOT/config/dev/certs"
days=30
force=0
names=(cache localhost)
while [ $# -gt 0 ]; do
    case "$1" in
    --dir) [ $# -ge 2 ] || usage_error "--dir needs a directory"; dir=$2; shift 2 ;;
    --days)
        if [ $# -lt 2 ] || ! in_range "$2" 1 3650; then
            usage_error "--days needs a number from 1 to 3650"
        fi
        days=$2
        shift 2
        ;;
    --name)
        if [ $# -lt 2 ] || ! [[ $2 =~ ^[A-Za-z0-9.-]+$ ]]; then
            usage_error "--name needs a DNS name"
        fi
        names+=("$2")
        shift 2
        ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
    esac
done

need openssl "install Debian's openssl package"
mkdir -p "$dir"
if [ "$force" = 0 ] && [ -e "$dir/ca.crt" ]; then
    die "$dir already holds certificates; pass --force to replace them (then restart the stack)"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

san="IP:127.0.0.1"
for n in "${names[@]}"; do
    san="DNS:$n,$san"
done

# The CA: may sign certificates, nothing else.
openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days "$days" \
    -subj "/CN=stratq development CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null

# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt signed by the CA.
sign() {
    openssl req -new -newkey rsa:2048 -nodes -subj "$2" \
        -keyout "$tmp/$1.key" -out "$tmp/$1.csr" 2>/dev/null
    printf '%s\n' "$3" >"$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -days "$days" -sha256 \
        -extfile "$tmp/$1.ext" -out "$tmp/$1.crt" 2>/dev/null
}

sign redis "/CN=cache" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"
sign client "/CN=stratq" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

for f in ca redis client; do
    openssl verify -CAfile "$tmp/ca.crt" "$tmp/$f.crt" >/dev/null ||
        die "openssl made a certificate ($f.crt) that its CA does not verify"
done

install -m 0600 "$tmp/ca.key" "$dir/ca.key"
install -m 0644 "$tmp/ca.crt" "$tmp/redis.crt" "$tmp/redis.key" \
    "$tmp/client.crt" "$tmp/client.key" "$dir/"
printf '%s: CA, Redis (%s) and client certificates in %s, valid %s days\n' \
    "$prog" "$san" "$dir" "$days"
