#!/bin/sh
# `make fresh-check`: the README's two commands on a machine in the state a
# newcomer's is in.
#
# 1. debootstrap builds a minimal Debian 12 root from Debian's archive
#    (minbase plus git, make and ca-certificates; nothing else) and
#    `docker import` turns it into an image;
# 2. a container from that image gets `git archive HEAD` of this checkout in
#    /root/stratq, as a clone would be;
# 3. there it runs `make demo` and then `make test`, exactly as the README
#    says, and fails on the first failure, printing the time each took.
#
# The container has the host's capabilities and cgroups: the worker's sandbox
# makes namespaces, mounts and cgroups, as it does on a host. Everything
# it starts is ended by id (the container, the image, any mount debootstrap
# left); logs stay in build/fresh/. FRESH_REF picks another commit than HEAD; FRESH_KEEP=1 keeps
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
mirror=${FRESH_MIRROR:-http://deb.debian.org/debian}
out=$PWD/build/fresh
mkdir -p "$out"
rm -f "$out"/*.log

[ "$(id -u)" -eq 0 ] || die "fresh-check runs debootstrap and a container with the host's capabilities: run it as root"
sh scripts/deps.sh fresh
command -v docker >/dev/null 2>&1 || die "fresh-check needs Docker Engine and its client (Debian: docker.io)"
docker info >/dev/null 2>&1 || die "fresh-check needs a running Docker Engine (docker info fails)"
git rev-parse --verify -q "$ref^{commit}" >/dev/null || die "fresh-check: $ref is not a commit"

root=$(mktemp -d "$out/root.XXXXXX")
cid=""
image=""
cleanup() {
    status=$?
    # debootstrap mounts /proc and /sys in the root while it runs; an
    # interrupted run can leave them (deepest first).
    awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$root"
    if [ -n "$cid" ] && [ "${FRESH_KEEP:-0}" != 1 ]; then docker rm -f "$cid" >/dev/null 2>&1 || true; fi
    if [ -n "$image" ] && [ "${FRESH_KEEP:-0}" != 1 ]; then docker rmi -f "$image" >/dev/null 2>&1 || true; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s; }
t0=$(now)
log "fresh-check: debootstrap bookworm (minbase + git make ca-certificates) from $mirror"
debootstrap --variant=minbase --include=git,make,ca-certificates bookworm "$root" "$mirror" \
    >"$out/debootstrap.log" 2>&1 || { tail -n 30 "$out/debootstrap.log" >&2; die "debootstrap failed (build/fresh/debootstrap.log)"; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
image=$(tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "stratq-fresh:$(git rev-parse --short "$ref")")
rm -rf "$root"
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
printf '  root (debootstrap + import)  %5ss\n' "$t_root"
for goal in ${FRESH_GOALS:-demo test}; do
    eval "printf '  make %-23s %5ss\\n' $goal \"\$t_$goal\""
done
printf '  total                        %5ss\n' "$(($(now) - t0))"
