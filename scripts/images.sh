#!/bin/sh
# `make images`: every image config/dev/docker-compose.yaml needs, on a
# machine whose Docker Engine has no registry to pull from.
#
#   base    debian:bookworm-slim, when the engine does not have it: a minimal
#           Debian 12 root made by debootstrap from Debian's archive, trimmed
#           the way Debian's own slim image is (no documentation, manual
#           pages or locales, no apt lists), with the archive, updates and
#           security sources, and `docker import`ed under that tag so that
#           the Dockerfiles build unchanged. An engine that already has the
#           tag (pulled from a registry, or made here before) keeps it.
#   stratq  stratq:dev from the Dockerfile (the api and worker services).
#   cache   stratq-redis:dev from config/dev/redis.Dockerfile: Debian's
#           redis-server (the cache service).
#
# `scripts/images.sh` builds all three; `scripts/images.sh base` only the
# base (make fresh-check starts from it). The builds use the classic builder,
# which needs nothing from a registry (BuildKit fetches its Dockerfile
# frontend). IMAGES_MIRROR picks another Debian mirror for debootstrap.
set -eu
cd "$(dirname "$0")/.."

die() {
    printf 'images.sh: %s\n' "$*" >&2
    exit 1
}
log() { printf 'images.sh: %s\n' "$*" >&2; }

base=debian:bookworm-slim
mirror=${IMAGES_MIRROR:-http://deb.debian.org/debian}
what=${1:-all}
case $what in
all | base | stratq | cache) ;;
*) die "unknown image set '$what' (all, base, stratq or cache)" ;;
esac

command -v docker >/dev/null 2>&1 || die "no docker client: install Docker Engine (Debian: sudo apt-get install docker.io docker-compose)"
docker info >/dev/null 2>&1 || die "the Docker Engine does not answer ('docker info' fails): start it (sudo systemctl start docker) or join the docker group"

now() { date +%s; }

root=""
# debootstrap mounts /proc and /sys in the root while it runs; an
# interrupted run can leave them (deepest first).
remove_root() {
    [ -n "$root" ] || return 0
    awk -v r="$root" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    rm -rf "$root"
}

# The base image, from Debian's archive.
make_base() {
    if docker image inspect "$base" >/dev/null 2>&1; then
        log "$base is there ($(docker image inspect -f '{{.Id}}' "$base" | cut -c8-19)); kept"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "$base is missing and debootstrap must run as root to make it: run 'sudo make images' (or 'docker pull $base' where a registry is reachable)"
    sh scripts/deps.sh images
    t=$(now)
    mkdir -p build/images
    root=$(mktemp -d "$PWD/build/images/root.XXXXXX")
    trap remove_root EXIT
    trap 'exit 130' INT TERM
    log "debootstrap bookworm (minbase) from $mirror"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >build/images/debootstrap.log 2>&1 ||
        { tail -n 30 build/images/debootstrap.log >&2; die "debootstrap failed (build/images/debootstrap.log)"; }

    # What Debian's slim image leaves out, for the packages installed later too.
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian \
        "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/* \
        "$root"/tmp/* "$root"/root/.bash_history
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    : >"$root/etc/machine-id"
    printf 'stratq-base\n' >"$root/etc/hostname"

    tar --numeric-owner -C "$root" -c . |
        docker import -c 'CMD ["bash"]' \
            -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -m "Debian 12 (bookworm) minbase from $mirror, made by stratq's scripts/images.sh" \
            - "$base" >/dev/null
    remove_root
    log "$base made from Debian's archive in $(($(now) - t))s ($(docker image inspect -f '{{.Size}}' "$base" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# build TAG DOCKERFILE: the classic builder, context the repository root.
build() {
    t=$(now)
    log "docker build -t $1 -f $2 ."
    mkdir -p build/images
    logf=build/images/$(printf '%s' "$1" | tr ':/' '__').log
    DOCKER_BUILDKIT=0 docker build -t "$1" -f "$2" . >"$logf" 2>&1 ||
        { tail -n 30 "$logf" >&2; die "building $1 failed ($logf)"; }
    log "$1 built in $(($(now) - t))s ($(docker image inspect -f '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

make_base
case $what in
all)
    build stratq:dev Dockerfile
    build stratq-redis:dev config/dev/redis.Dockerfile
    ;;
stratq) build stratq:dev Dockerfile ;;
cache) build stratq-redis:dev config/dev/redis.Dockerfile ;;
esac
