#!/bin/sh
# `make fresh-check`: the README's two commands on a machine in the state a
# newcomer's is in.
#
# 1. a minimal Debian 12 root: debian:bookworm-slim (made from Debian's
#    archive by debootstrap and `docker import` when the engine lacks it,
#    scripts/images.sh) plus git, make and ca-certificates; nothing else;
# 2. a container from that image gets `git archive HEAD` of this checkout in
#    /root/stratq, as a clone would be;
# 3. there it runs `make demo` and then `make test`, exactly as the README
#    says, and fails on the first failure, printing the time each took.
#
# The container has the host's capabilities and cgroups: the worker's sandbox
# makes namespaces, mounts and cgroups, as it does on a host. Everything
# it starts is ended by id (the container, the image); logs stay in
# build/fresh/. FRESH_REF picks another commit than HEAD; FRESH_KEEP=1 keeps
# the container for a look inside (removed with `docker rm -f ID`);
# FRESH_GOALS=demo runs only the first command.
set -eu
cd "$(dirname "$0")/.."

log() { printf '%s\n' "$*" >&2; }
die() {
    printf '%s\n' "$*" >&2
    exit 1
}

ref=${FRESH_REF:-HEAD}
out=$PWD/build/fresh
mkdir -p "$out"
rm -f "$out"/*.log

[ "$(id -u)" -eq 0 ] || die "fresh-check runs a container with the host's capabilities: run it as root"
command -v docker >/dev/null 2>&1 || die "fresh-check needs Docker Engine and its client (Debian: docker.io)"
docker info >/dev/null 2>&1 || die "fresh-check needs a running Docker Engine (docker info fails)"
git rev-parse --verify -q "$ref^{commit}" >/dev/null || die "fresh-check: $ref is not a commit"

cid=""
image=""
cleanup() {
    status=$?
    if [ -n "$cid" ] && [ "${FRESH_KEEP:-0}" != 1 ]; then docker rm -f "$cid" >/dev/null 2>&1 || true; fi
    if [ -n "$image" ] && [ "${FRESH_KEEP:-0}" != 1 ]; then docker rmi -f "$image" >/dev/null 2>&1 || true; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s; }
t0=$(now)
# debian:bookworm-slim: made from Debian's archive by debootstrap when the
# engine lacks it (scripts/images.sh, as for `make images`), then what a
# newcomer's machine has before the README: git, make and the CA bundle.
sh scripts/images.sh base
log "fresh-check: pristine root: debian:bookworm-slim + git make ca-certificates"
image=stratq-fresh:$(git rev-parse --short "$ref")
printf 'FROM debian:bookworm-slim\nRUN apt-get update && apt-get install -y --no-install-recommends git make ca-certificates && rm -rf /var/lib/apt/lists/*\nCMD ["/bin/bash"]\n' |
    DOCKER_BUILDKIT=0 docker build -t "$image" - >"$out/root.log" 2>&1 ||
    { tail -n 30 "$out/root.log" >&2; die "making the pristine root failed (build/fresh/root.log)"; }
t_root=$(($(now) - t0))
log "fresh-check: pristine root $image in ${t_root}s"

# Every capability the host has (this kind of host lacks CAP_SYS_RESOURCE,
# which --privileged would ask for), no seccomp or AppArmor profile, and the
# host's cgroup tree: what the worker's sandbox uses on a host.
cid=$(docker create --cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined \
    --security-opt apparmor=unconfined --security-opt systempaths=unconfined \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --shm-size=1g --hostname fresh -w /root/stratq \
    -e HOME=/root -e TERM=dumb "$image" sleep infinity)
git archive --prefix=stratq/ "$ref" | docker cp - "$cid:/root/"
# The certificate authorities this machine's administrator added (a proxy
# that inspects TLS, as on this kind of machine and behind many company
# firewalls) are part of its network, not of the project: the fresh root
# trusts them too, or the Go module proxy cannot be reached.
if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    docker cp /usr/local/share/ca-certificates/. "$cid:/usr/local/share/ca-certificates/"
    local_cas=1
fi
docker start "$cid" >/dev/null
if [ "${local_cas:-0}" = 1 ]; then
    docker exec "$cid" update-ca-certificates >/dev/null
fi
log "fresh-check: container ${cid%"${cid#????????????}"} has $(git rev-parse --short "$ref") in /root/stratq"

# timed NAME: `make NAME` in the container, shown and kept in build/fresh/NAME.log;
# fails with the log's name when it fails.
timed() {
    name=$1
    t=$(now)
    log "fresh-check: make $name"
    docker exec "$cid" sh -c "make $name; echo \$? >/tmp/fresh-$name.rc" 2>&1 | tee "$out/$name.log"
    rc=$(docker exec "$cid" cat "/tmp/fresh-$name.rc")
    elapsed=$(($(now) - t))
    [ "$rc" = 0 ] || die "fresh-check: make $name failed (exit $rc) after ${elapsed}s on a fresh Debian 12; log in build/fresh/$name.log"
    eval "t_$name=$elapsed"
}
for goal in ${FRESH_GOALS:-demo test}; do
    timed "$goal"
done

printf '\nfresh-check passed on a pristine Debian 12 root (%s):\n' "$(git rev-parse --short "$ref")"
printf '  root (base + git make certs)  %5ss\n' "$t_root"
for goal in ${FRESH_GOALS:-demo test}; do
    eval "printf '  make %-23s %5ss\\n' $goal \"\$t_$goal\""
done
printf '  total                        %5ss\n' "$(($(now) - t0))"
