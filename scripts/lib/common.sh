# Shared by scripts/scale-workers.sh and scripts/monitor-workers.sh, which
# set $prog (their name, for messages) before sourcing this file.
# shellcheck shell=bash disable=SC2154

die() {
    printf '%s: %s\n' "$prog" "$*" >&2
    exit 1
}

usage_error() {
    printf '%s: %s\n' "$prog" "$*" >&2
    printf "Run 'scripts/%s --help' for the usage.\n" "$prog" >&2
    exit 2
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH: $2"
}

is_uint() {
    [[ $1 =~ ^[0-9]{1,6}$ ]]
}

# in_range VALUE MIN [MAX]: VALUE is a whole number from MIN to MAX.
in_range() {
    is_uint "$1" || return 1
    [ "$((10#$1))" -ge "$2" ] || return 1
    [ $# -lt 3 ] || [ "$((10#$1))" -le "$3" ]
}
