#!/usr/bin/env bash
# Sets the number of stratq workers in one environment (docs/operations.md,
# "Scripts"; the numbers are the worker scaling guide's).
#
#   local  the `stratq up` stack on this machine: writes the count to
#          STATE_DIR/workers, sends SIGHUP to `stratq up` and waits until the
#          API shows that many live workers. Surplus workers drain: each
#          finishes its job (or gives it back to the queue after
#          STRATQ_DRAIN_TIMEOUT_S), so no job is lost.
#   dev    docker compose -f config/dev/docker-compose.yaml up -d --scale worker=N
#          (docker-compose --compatibility ... when Compose v2 is missing)
#   stage  kubectl scale deployment worker --replicas=N -n ENV --context=minikube-ENV
#   prod   (--pin: kubectl patch hpa worker-hpa with minReplicas = maxReplicas = N;
#          under KEDA, the ScaledObject's paused-replicas annotation)
set -euo pipefail

prog=scale-workers.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIN_WORKERS=2  # the guide: "Minimum: 2 workers (fault tolerance)"
MAX_WORKERS=10 # the guide: "Maximum: 10 workers (resource limits)"

usage() {
    cat <<EOF
Usage: scripts/$prog ENV N [options]

Sets the number of stratq workers in ENV to N.

ENV
  local   the stack of a running 'stratq up' on this machine
  dev     Docker Compose (config/dev/docker-compose.yaml)
  stage   Kubernetes, namespace stage, context minikube-stage
  prod    Kubernetes, namespace prod, context minikube-prod

N is refused outside $MIN_WORKERS-$MAX_WORKERS (the scaling guide: at least $MIN_WORKERS for fault
tolerance, at most $MAX_WORKERS for resource limits) unless --force is given.

Options
  --force            allow N outside $MIN_WORKERS-$MAX_WORKERS
  --pin              stage/prod: set the HPA worker-hpa's minReplicas and
                     maxReplicas to N instead of scaling the deployment, so
                     the autoscaler holds N (a plain scale is overridden by
                     the HPA at its next sync); under KEDA, annotate its
                     ScaledObject with autoscaling.keda.sh/paused-replicas=N
  --state-dir DIR    local: the state directory of 'stratq up' (default
                     \$STRATQ_STATE_DIR or .stratq)
  --timeout S        local: seconds to wait for N live workers (default 60);
                     stage/prod: seconds for 'kubectl rollout status' (default 120)
  --no-wait          do not wait for the new count to be reached
  --compose-file F   dev: the Compose file (default config/dev/docker-compose.yaml)
  --context C        stage/prod: kubectl context (default minikube-ENV)
  --namespace NS     stage/prod: namespace (default ENV)
  -h, --help         this help

Examples
  scripts/$prog dev 5
  scripts/$prog prod 8
  scripts/$prog stage 4 --pin
  scripts/$prog local 3 --state-dir .stratq

Exit status: 0 done, 1 the scaling failed (the message says why and what to
do), 2 bad arguments.
EOF
}

# die, usage_error, need, is_uint, in_range
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# ---------------------------------------------------------------- arguments

env_name=""
count=""
force=0
pin=0
wait_for_it=1
state_dir=${STRATQ_STATE_DIR:-.stratq}
timeout=""
compose_file=""
context=""
namespace=""

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --force) force=1 ;;
    --pin) pin=1 ;;
    --no-wait) wait_for_it=0 ;;
    --state-dir | --timeout | --compose-file | --context | --namespace)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        case $1 in
        --state-dir) state_dir=$2 ;;
        --timeout) timeout=$2 ;;
        --compose-file) compose_file=$2 ;;
        --context) context=$2 ;;
        --namespace) namespace=$2 ;;
        esac
        shift
        ;;
    --state-dir=* | --timeout=* | --compose-file=* | --context=* | --namespace=*)
        value=${1#*=}
        case $1 in
        --state-dir=*) state_dir=$value ;;
        --timeout=*) timeout=$value ;;
        --compose-file=*) compose_file=$value ;;
        --context=*) context=$value ;;
        --namespace=*) namespace=$value ;;
        esac
        ;;
    --) ;;
    -*) usage_error "unknown option '$1'" ;;
    *)
        if [ -z "$env_name" ]; then
            env_name=$1
        elif [ -z "$count" ]; then
            count=$1
        else
            usage_error "too many arguments: '$1' (the usage is: $prog ENV N [options])"
        fi
        ;;
    esac
    shift
done

[ -n "$env_name" ] || usage_error "missing ENV and N (the usage is: $prog ENV N [options])"
case $env_name in
local | dev | stage | prod) ;;
*) usage_error "unknown environment '$env_name': use local, dev, stage or prod" ;;
esac
[ -n "$count" ] || usage_error "missing N, the number of workers (for example: $prog $env_name 3)"
is_uint "$count" || usage_error "N must be a whole number of workers, not '$count'"
count=$((10#$count))
if [ "$force" -eq 0 ] && { [ "$count" -lt $MIN_WORKERS ] || [ "$count" -gt $MAX_WORKERS ]; }; then
    usage_error "N=$count is outside the scaling guide's bounds of $MIN_WORKERS-$MAX_WORKERS workers (at least $MIN_WORKERS for fault tolerance, at most $MAX_WORKERS for resource limits); pass --force to set it anyway"
fi
if [ -n "$timeout" ]; then
    in_range "$timeout" 1 || usage_error "--timeout must be a whole number of seconds > 0, not '$timeout'"
fi
if [ "$pin" -eq 1 ] && [ "$env_name" != stage ] && [ "$env_name" != prod ]; then
    usage_error "--pin applies to stage and prod (their HPA); $env_name has none"
fi

# ---------------------------------------------------------------- local

# The /v1/workers answer, with STRATQ_API_TOKEN sent when set (through
# curl's config on stdin, so the token is not in any process's argv).
api_get() {
    local url=$1
    {
        if [ -n "${STRATQ_API_TOKEN:-}" ]; then
            printf 'header = "Authorization: Bearer %s"\n' "$STRATQ_API_TOKEN"
        fi
    } | curl -fsS --max-time 5 --config - "$url"
}

# Live workers of this stack: listed by the API, not lost, and running as
# children of `stratq up` (pid $1) on this host. Prints "ACTIVE DRAINING".
count_local_workers() {
    local up_pid=$1 workers pid state ppid active=0 draining=0 host
    host=$(uname -n)
    workers=$(api_get "$api_url/v1/workers") || return 1
    while read -r whost pid state; do
        [ "$whost" = "$host" ] || continue
        ppid=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f2) || continue
        [ "$ppid" = "$up_pid" ] || continue
        case $state in
        lost) ;;
        draining) draining=$((draining + 1)) ;;
        *) active=$((active + 1)) ;;
        esac
    done < <(jq -r '.workers[] | "\(.host) \(.pid) \(.state)"' <<<"$workers")
    echo "$active $draining"
}

scale_local() {
    need jq "install it (sudo apt-get install jq)"
    need curl "install it (sudo apt-get install curl)"
    [ "$count" -ge 1 ] || die "stratq up runs at least 1 worker; to stop the stack, stop 'stratq up' (Ctrl-C)"
    local up_json=$state_dir/up.json up_pid deadline now seen want_msg
    [ -f "$up_json" ] || die "no running 'stratq up' in $state_dir ($up_json does not exist): start the stack with 'build/stratq up', or pass --state-dir DIR where it runs"
    up_pid=$(jq -r '.pid // empty' "$up_json") || die "cannot read $up_json: is it a 'stratq up' state file?"
    api_url=$(jq -r '.api_url // empty' "$up_json")
    { is_uint "$up_pid" && [ -n "$api_url" ]; } || die "$up_json has no pid or api_url; restart 'stratq up'"
    # SIGHUP kills a process that does not handle it: make sure the pid is
    # still 'stratq up' and not a process that reused the number.
    local -a argv=()
    if [ -r "/proc/$up_pid/cmdline" ]; then
        mapfile -d '' -t argv <"/proc/$up_pid/cmdline" || argv=()
    fi
    if [ "${#argv[@]}" -lt 2 ] || [ "${argv[0]##*/}" != stratq ] || [ "${argv[1]}" != up ]; then
        die "$up_json names pid $up_pid, which is not a running 'stratq up' (the stack stopped without cleaning up?): start it again with 'build/stratq up'"
    fi

    local tmp=$state_dir/workers.tmp.$$
    printf '%d\n' "$count" >"$tmp" || die "cannot write $tmp: check the permissions of $state_dir"
    mv -f "$tmp" "$state_dir/workers"
    kill -HUP "$up_pid" || die "cannot signal 'stratq up' (pid $up_pid): run this as the user that started it"
    echo "asked 'stratq up' (pid $up_pid) for $count workers"
    [ "$wait_for_it" -eq 1 ] || return 0

    local limit=${timeout:-60} counts active draining reported last=""
    deadline=$((SECONDS + limit))
    while :; do
        seen="the API at $api_url does not answer"
        if counts=$(count_local_workers "$up_pid" 2>/dev/null); then
            read -r active draining <<<"$counts"
            reported=$(jq -r '"\(.workers) \(.draining // 0)"' "$up_json" 2>/dev/null || echo "? ?")
            seen="$active live, $draining draining"
            if [ "$seen" != "$last" ]; then
                echo "  workers: $seen (want $count)"
                last=$seen
            fi
            if [ "$active" -eq "$count" ] && [ "$draining" -eq 0 ] && [ "$reported" = "$count 0" ]; then
                echo "done: $count workers"
                return 0
            fi
        fi
        kill -0 "$up_pid" 2>/dev/null || die "'stratq up' (pid $up_pid) exited while scaling; see $state_dir/logs"
        now=$SECONDS
        if [ "$now" -ge "$deadline" ]; then
            want_msg="timed out after ${limit}s waiting for $count live workers (now: $seen)"
            die "$want_msg. A draining worker first finishes its job (up to STRATQ_DRAIN_TIMEOUT_S, 25 s by default); look at $state_dir/logs/worker-*.log and the output of 'stratq up', or wait longer with --timeout S"
        fi
        sleep 1
    done
}

# ---------------------------------------------------------------- dev

scale_dev() {
    need docker "install Docker with the Compose plugin (https://docs.docker.com/compose/install/)"
    local file=${compose_file:-config/dev/docker-compose.yaml}
    # Compose files are given relative to the repository unless absolute;
    # run from there so the project name is the same as the guide's commands.
    if [ -n "$compose_file" ] && [[ $compose_file != /* ]] && [ -f "$compose_file" ]; then
        file=$(cd "$(dirname "$compose_file")" && pwd)/$(basename "$compose_file")
    fi
    cd "$ROOT"
    [ -f "$file" ] || die "$file not found in $ROOT: run this script from a stratq checkout, or pass --compose-file FILE"
    if ! grep -q 'stop_grace_period' "$file"; then
        echo "$prog: warning: $file sets no stop_grace_period; Compose stops a surplus worker after 10 s, before its 25 s drain (STRATQ_DRAIN_TIMEOUT_S) is over, and its job goes back to the queue" >&2
    fi
    local -a compose
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        # v1 ignores deploy: (replicas, cpus, memory) without --compatibility.
        compose=(docker-compose --compatibility)
    else
        die "neither 'docker compose' (Compose v2) nor 'docker-compose' works here: install the Compose plugin (sudo apt-get install docker-compose-plugin)"
    fi
    echo "+ ${compose[*]} -f $file up -d --scale worker=$count"
    if ! "${compose[@]}" -f "$file" up -d --scale "worker=$count"; then
        die "'${compose[*]} up' failed (output above): check that the Docker daemon runs ('docker info') and that $file is valid ('${compose[*]} -f $file config')"
    fi
    "${compose[@]}" -f "$file" ps worker || true
}

# ---------------------------------------------------------------- stage/prod

scale_k8s() {
    need kubectl "install kubectl (https://kubernetes.io/docs/tasks/tools/)"
    need jq "install it (sudo apt-get install jq)"
    local ns=${namespace:-$env_name} ctx=${context:-minikube-$env_name}
    local hpas hpa name min max keda err
    err=$(mktemp)
    # The autoscaler of the deployment, whatever its name: worker-hpa from
    # config/deploy/k8s, or the HPA KEDA makes for its ScaledObject.
    if ! hpas=$(kubectl -n "$ns" "--context=$ctx" get hpa -o json 2>"$err"); then
        cat "$err" >&2
        rm -f "$err"
        die "kubectl cannot reach the cluster of context $ctx (output above): check 'kubectl config get-contexts' and that the cluster runs ('minikube status -p $ctx'), or pass --context"
    fi
    rm -f "$err"
    hpa=$(jq -c '[.items[]? | select(.spec.scaleTargetRef.kind == "Deployment" and .spec.scaleTargetRef.name == "worker")][0] // empty' <<<"$hpas") ||
        die "cannot read the answer of 'kubectl get hpa -n $ns --context=$ctx -o json'"
    if [ -n "$hpa" ]; then
        name=$(jq -r '.metadata.name' <<<"$hpa")
        min=$(jq -r '.spec.minReplicas // 1' <<<"$hpa")
        max=$(jq -r '.spec.maxReplicas' <<<"$hpa")
        keda=$(jq -r '[.metadata.ownerReferences[]? | select(.kind == "ScaledObject") | .name][0] // empty' <<<"$hpa")
    fi

    if [ "$pin" -eq 1 ]; then
        [ -n "$hpa" ] || die "--pin needs the HPA of the worker deployment, and namespace $ns (context $ctx) has none: scale without --pin, or apply it (kubectl apply -k config/deploy/k8s/overlays/$env_name)"
        [ "$count" -ge 1 ] || die "an HPA's minReplicas must be at least 1; to stop every worker, scale without --pin and delete the HPA first"
        if [ -n "$keda" ]; then
            # KEDA owns this HPA and reverts changes to it; its own pause
            # annotation holds a count instead.
            echo "+ kubectl annotate scaledobject $keda autoscaling.keda.sh/paused-replicas=$count --overwrite -n $ns --context=$ctx"
            kubectl annotate scaledobject "$keda" "autoscaling.keda.sh/paused-replicas=$count" --overwrite -n "$ns" "--context=$ctx" ||
                die "kubectl annotate failed (output above): check your permissions in namespace $ns ('kubectl auth can-i patch scaledobjects -n $ns --context=$ctx')"
            echo "pinned: KEDA holds $count workers (ScaledObject $keda paused)"
            echo "to let it autoscale again: kubectl annotate scaledobject $keda autoscaling.keda.sh/paused-replicas- -n $ns --context=$ctx"
            return 0
        fi
        local patch back_min=$min back_max=$max
        if [ "$min" = "$max" ]; then
            back_min=$MIN_WORKERS back_max=$MAX_WORKERS
        fi
        patch=$(printf '{"spec":{"minReplicas":%d,"maxReplicas":%d}}' "$count" "$count")
        echo "+ kubectl patch hpa $name -n $ns --context=$ctx --type=merge -p '$patch'"
        kubectl patch hpa "$name" -n "$ns" "--context=$ctx" --type=merge -p "$patch" ||
            die "kubectl patch failed (output above): check your permissions in namespace $ns ('kubectl auth can-i patch hpa -n $ns --context=$ctx')"
        echo "pinned: $name now holds $count workers (it was min $min, max $max); the HPA sets the deployment at its next sync (15 s)"
        echo "to let it autoscale again: kubectl patch hpa $name -n $ns --context=$ctx --type=merge -p '{\"spec\":{\"minReplicas\":$back_min,\"maxReplicas\":$back_max}}' (the next 'kubectl apply -k' of the overlay does it too)"
        return 0
    fi

    echo "+ kubectl scale deployment worker --replicas=$count -n $ns --context=$ctx"
    kubectl scale deployment worker "--replicas=$count" -n "$ns" "--context=$ctx" ||
        die "kubectl scale failed (output above): check that the worker deployment exists ('kubectl get deployment worker -n $ns --context=$ctx'; apply it with kubectl apply -k config/deploy/k8s/overlays/$env_name)"
    if [ -n "$hpa" ]; then
        local who="the HPA $name"
        [ -z "$keda" ] || who="KEDA (ScaledObject $keda, through the HPA $name)"
        if [ "$count" -lt "$min" ] || [ "$count" -gt "$max" ]; then
            echo "$prog: warning: $who keeps between $min and $max workers and will set the deployment back into that range at its next sync (15 s); to hold $count, run: scripts/$prog $env_name $count --pin" >&2
        else
            echo "$prog: warning: $who (min $min, max $max) manages this deployment and will change $count back by its metrics at its next sync (15 s); to hold $count, run: scripts/$prog $env_name $count --pin" >&2
        fi
    fi
    if [ "$wait_for_it" -eq 1 ]; then
        echo "+ kubectl rollout status deployment/worker -n $ns --context=$ctx --timeout=${timeout:-120}s"
        kubectl rollout status deployment/worker -n "$ns" "--context=$ctx" "--timeout=${timeout:-120}s" ||
            die "the workers did not all become ready: look at 'kubectl get pods -l app=worker -n $ns --context=$ctx' and 'kubectl describe deployment worker -n $ns --context=$ctx'"
    fi
}

case $env_name in
local) scale_local ;;
dev) scale_dev ;;
stage | prod) scale_k8s ;;
esac
