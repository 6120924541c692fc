#!/usr/bin/env bash
# Shows the state of the stratq workers of one environment and the scaling
# guide's advice (docs/operations.md, "Scripts").
#
# This script gathers only what the environment knows; `stratq monitor
# --env-file` (src/cli/monitor_env.c) reads the API, decides with the
# guide's thresholds (src/common/advice.c) and prints the report. Each
# sample is one line of JSON: {env, source, units, hpa, events, errors,
# api_url, api_hint, prog}.
#   local  no units: the workers run on this machine, and stratq monitor
#          measures their process trees from /proc
#   dev    docker stats of the worker containers, docker events
#   stage  kubectl top against the worker container's requests, as the HPA
#   prod   counts utilisation; the HPA and recent scaling events
# How the API is reached:
#   local  up.json's api_url, written by `stratq up` in its state directory
#   dev    the port Compose publishes for the api service (docker compose port)
#   stage  kubectl port-forward to service api, for as long as the script runs
#   prod   (the API needs a bearer token there: STRATQ_API_TOKEN)
set -euo pipefail

prog=monitor-workers.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
    cat <<EOF
Usage: scripts/$prog ENV [options]

Shows the stratq workers of ENV: queue length, processing, scheduled and dead
jobs; each worker and its state; job wait and run time (p50, p95) over recent
jobs; CPU and memory per worker; the HPA and recent scaling events (stage,
prod); and the scaling guide's advice. Refreshes every --interval seconds
until interrupted, or prints once with --once.

ENV
  local   the stack of a running 'stratq up' (its up.json, /proc)
  dev     Docker Compose (config/dev/docker-compose.yaml, docker stats)
  stage   Kubernetes, namespace stage, context minikube-stage (kubectl top)
  prod    Kubernetes, namespace prod, context minikube-prod

Advice (the worker scaling guide):
  scale up    the queue stays above 5, the average wait exceeds 30 s, or
              CPU or memory utilisation exceeds 80%
  scale down  the queue stays at 0 and CPU and memory utilisation are under 30%
  "Stays" means in each of the last --window samples (only the current one
  with --once). Worker counts stay within the guide's 2-10.

Options
  --once             print one report and exit
  --json             print the report as JSON (one object; one per line
                     without --once); the keys are in docs/operations.md
  --interval S       seconds between reports (default 10)
  --window K         samples the queue must stay above 5 or at 0 (default 3)
  --jobs N           recent succeeded jobs for the time percentiles (default
                     100, at most 500)
  --api-url URL      use this stratq API instead of finding it
  --api-service S    dev: Compose service, stage/prod: Kubernetes service of
                     the API, as NAME or NAME:PORT (default api:8080)
  --state-dir DIR    local: the state directory of 'stratq up' (default
                     \$STRATQ_STATE_DIR or .stratq)
  --compose-file F   dev: the Compose file (default config/dev/docker-compose.yaml)
  --context C        stage/prod: kubectl context (default minikube-ENV)
  --namespace NS     stage/prod: namespace (default ENV)
  -h, --help         this help

Environment
  STRATQ_API_TOKEN   bearer token for the API (dev: defaults to the token in
                     config/dev/api-tokens.dev when STRATQ_API_TOKENS_SRC is unset)
  STRATQ_BIN         the stratq binary that makes the report (default:
                     build/stratq of this checkout, else stratq on PATH)

Exit status: 0 the report is complete, 1 a source could not be read (the
report shows what is missing and the message says what to do), 2 bad arguments.
EOF
}

# die, usage_error, need, is_uint, in_range
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

# ---------------------------------------------------------------- arguments

env_name=""
once=0
json=0
interval=10
window=3
jobs_limit=100
api_url=""
api_service=api:8080
state_dir=${STRATQ_STATE_DIR:-.stratq}
compose_file=""
context=""
namespace=""

while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --once) once=1 ;;
    --json) json=1 ;;
    --interval | --window | --jobs | --api-url | --api-service | --state-dir | --compose-file | --context | --namespace)
        [ $# -ge 2 ] || usage_error "$1 needs a value"
        opt=$1 value=$2
        shift
        ;&
    --*=*)
        if [ -z "${opt:-}" ]; then
            opt=${1%%=*} value=${1#*=}
        fi
        case $opt in
        --interval) interval=$value ;;
        --window) window=$value ;;
        --jobs) jobs_limit=$value ;;
        --api-url) api_url=$value ;;
        --api-service) api_service=$value ;;
        --state-dir) state_dir=$value ;;
        --compose-file) compose_file=$value ;;
        --context) context=$value ;;
        --namespace) namespace=$value ;;
        *) usage_error "unknown option '$opt'" ;;
        esac
        opt=""
        ;;
    --) ;;
    -*) usage_error "unknown option '$1'" ;;
    *)
        [ -z "$env_name" ] || usage_error "too many arguments: '$1' (the usage is: $prog ENV [options])"
        env_name=$1
        ;;
    esac
    shift
done

[ -n "$env_name" ] || usage_error "missing ENV: one of local, dev, stage, prod"
case $env_name in
local | dev | stage | prod) ;;
*) usage_error "unknown environment '$env_name': use local, dev, stage or prod" ;;
esac
in_range "$interval" 1 || usage_error "--interval must be a whole number of seconds >= 1, not '$interval'"
in_range "$window" 1 || usage_error "--window must be a whole number >= 1, not '$window'"
in_range "$jobs_limit" 1 500 || usage_error "--jobs must be a whole number from 1 to 500 (the API's page limit), not '$jobs_limit'"
[[ $api_service =~ ^[A-Za-z0-9._-]+(:[0-9]+)?$ ]] || usage_error "--api-service must be NAME or NAME:PORT, not '$api_service'"
api_svc_name=${api_service%%:*}
api_svc_port=8080
[[ $api_service != *:* ]] || api_svc_port=${api_service##*:}

need jq "install it (sudo apt-get install jq)"
# The report is made by stratq monitor; it reads the API itself.
if [ -n "${STRATQ_BIN:-}" ]; then
    stratq=$STRATQ_BIN
elif [ -x "$ROOT/build/stratq" ]; then
    stratq=$ROOT/build/stratq
else
    stratq=$(command -v stratq) || die "stratq not found: build it ('make build/stratq' in $ROOT), or set STRATQ_BIN to a stratq binary"
fi
[ -x "$stratq" ] || die "STRATQ_BIN=$stratq is not an executable stratq binary: build it with 'make build/stratq'"

work=$(mktemp -d "${TMPDIR:-/tmp}/monitor-workers.XXXXXX")
pf_pid=""
sampler_pid=""
monitor_pid=""
# These two run from traps (shellcheck 0.9 takes them for unreachable).
# shellcheck disable=SC2317
stop_port_forward() {
    if [ -n "$pf_pid" ]; then
        kill "$pf_pid" 2>/dev/null || true
        wait "$pf_pid" 2>/dev/null || true
    fi
}
# shellcheck disable=SC2317
cleanup() {
    local pid
    for pid in $monitor_pid $sampler_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    stop_port_forward
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Problems of this sample: each becomes an entry of "errors" and a message.
errors=()
problem() {
    errors+=("$*")
}

# ---------------------------------------------------------------- compose

compose=()
compose_setup() {
    need docker "install Docker with the Compose plugin (https://docs.docker.com/compose/install/)"
    local file=${compose_file:-config/dev/docker-compose.yaml}
    if [ -n "$compose_file" ] && [[ $compose_file != /* ]] && [ -f "$compose_file" ]; then
        file=$(cd "$(dirname "$compose_file")" && pwd)/$(basename "$compose_file")
    fi
    cd "$ROOT"
    [ -f "$file" ] || die "$file not found in $ROOT: run this script from a stratq checkout, or pass --compose-file FILE"
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose -f "$file")
    elif command -v docker-compose >/dev/null 2>&1; then
        compose=(docker-compose --compatibility -f "$file")
    else
        die "neither 'docker compose' (Compose v2) nor 'docker-compose' works here: install the Compose plugin (sudo apt-get install docker-compose-plugin)"
    fi
}

# ---------------------------------------------------------------- API address

api_token=${STRATQ_API_TOKEN:-}
api_hint=""

find_api() {
    case $env_name in
    local)
        local up_json=$state_dir/up.json
        api_hint="is 'stratq up' still running? (pass --state-dir DIR where it runs)"
        if [ -n "$api_url" ]; then
            return 0
        fi
        [ -f "$up_json" ] || die "no running 'stratq up' in $state_dir ($up_json does not exist): start the stack with 'build/stratq up', or pass --state-dir DIR where it runs"
        api_url=$(jq -r '.api_url // empty' "$up_json") || die "cannot read $up_json: restart 'stratq up'"
        [ -n "$api_url" ] || die "$up_json has no api_url: restart 'stratq up'"
        ;;
    dev)
        compose_setup
        if [ -z "$api_token" ] && [ -z "${STRATQ_API_TOKENS_SRC:-}" ] && [ -f "$ROOT/config/dev/api-tokens.dev" ]; then
            api_token=$(grep -v '^[[:space:]]*\(#\|$\)' "$ROOT/config/dev/api-tokens.dev" | head -n 1 || true)
        fi
        api_hint="is the dev stack up? ('${compose[*]} ps'; start it with '${compose[*]} up -d')"
        [ -z "$api_url" ] || return 0
        local addr
        if ! addr=$("${compose[@]}" port "$api_svc_name" "$api_svc_port" 2>"$work/port.err") || [ -z "$addr" ]; then
            die "cannot find the port of the $api_svc_name service ($(tr '\n' ' ' <"$work/port.err")): start the dev stack ('${compose[*]} up -d'), or pass --api-url URL"
        fi
        addr=$(head -n 1 <<<"$addr")
        # 0.0.0.0 and :: mean every address: use loopback.
        addr=${addr/#0.0.0.0:/127.0.0.1:}
        addr=${addr/#\[::\]:/127.0.0.1:}
        addr=${addr/#:::/127.0.0.1:}
        api_url=http://$addr
        ;;
    stage | prod)
        api_hint="is the API running? ('kubectl get pods -l app=api -n $ns --context=$ctx')"
        [ -z "$api_url" ] || return 0
        port_forward
        ;;
    esac
}

# kubectl port-forward to the API's service on a local port kubectl picks;
# the process is ours and is stopped on exit.
port_forward() {
    if [ -n "$pf_pid" ] && kill -0 "$pf_pid" 2>/dev/null; then
        return 0
    fi
    local log=$work/port-forward.log i port=""
    : >"$log"
    kubectl port-forward -n "$ns" "--context=$ctx" "svc/$api_svc_name" ":$api_svc_port" >"$log" 2>&1 &
    pf_pid=$!
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$log" | head -n 1)
        [ -z "$port" ] || break
        kill -0 "$pf_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        kill "$pf_pid" 2>/dev/null || true
        wait "$pf_pid" 2>/dev/null || true
        pf_pid=""
        die "kubectl port-forward to svc/$api_svc_name:$api_svc_port in namespace $ns (context $ctx) did not start: $(tr '\n' ' ' <"$log"); check the service ('kubectl get svc -n $ns --context=$ctx'), pass --api-service NAME:PORT, or --api-url URL of an API you can reach"
    fi
    api_url=http://127.0.0.1:$port
}

collect_dev() {
    local ids
    echo "docker stats" >"$work/units.source"
    if ! ids=$("${compose[@]}" ps -q worker 2>"$work/ps.err"); then
        problem "cannot list the worker containers ($(tr '\n' ' ' <"$work/ps.err")): check that the Docker daemon runs ('docker info')"
        return 0
    fi
    if [ -n "$ids" ]; then
        # shellcheck disable=SC2086 # one argument per container id
        if docker stats --no-stream --format '{{json .}}' $ids >"$work/stats.json" 2>"$work/stats.err"; then
            jq -c '
                def bytes: capture("^(?<n>[0-9.]+)\\s*(?<u>[A-Za-z]*)$") as $c
                    | ($c.n | tonumber) * ({"": 1, "B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
                        "KiB": 1024, "MiB": 1048576, "GiB": 1073741824, "TiB": 1099511627776}[$c.u] // 1);
                def pct: rtrimstr("%") | tonumber? // null | if . == null then null else (. * 10 | round) / 10 end;
                {name: .Name, id: .ID, cpu_percent: (.CPUPerc | pct),
                 memory_bytes: ((.MemUsage // "") | split(" / ")[0] | bytes? // null | floor),
                 memory_percent: (.MemPerc | pct)}' "$work/stats.json" >"$work/units.json" ||
                problem "cannot read the output of docker stats: $(head -c 300 "$work/stats.json")"
        else
            problem "docker stats failed ($(tr '\n' ' ' <"$work/stats.err")): check that the Docker daemon runs ('docker info')"
        fi
    fi
    # Scaling events: worker containers created, started, stopped or
    # removed in the last 10 minutes.
    docker events --since 10m --until "$(date +%s)" --filter type=container \
        --filter label=com.docker.compose.service=worker --format '{{json .}}' >"$work/dev-events.json" 2>/dev/null || : >"$work/dev-events.json"
    jq -c 'select((.Action // .status) | IN("create", "start", "stop", "die", "kill", "destroy"))
        | {time: ((.time // 0) | todate), reason: (.Action // .status),
           object: ("container/" + (.Actor.Attributes.name // .id // "?")), message: (.Actor.Attributes.image // "")}' \
        "$work/dev-events.json" >"$work/events.json" 2>/dev/null || : >"$work/events.json"
}

collect_k8s() {
    local -a k=(kubectl -n "$ns" "--context=$ctx")
    echo "kubectl top" >"$work/units.source"
    # The autoscaler of the worker deployment, whatever its name (worker-hpa,
    # or keda-hpa-worker under KEDA).
    if "${k[@]}" get hpa -o json >"$work/hpas.json" 2>"$work/hpa.err"; then
        # As the report shows it: each resource metric against its target.
        jq -c '[.items[]? | select(.spec.scaleTargetRef.kind == "Deployment" and .spec.scaleTargetRef.name == "worker")][0] // empty
            | .status as $s | {name: .metadata.name, min: (.spec.minReplicas // 1), max: .spec.maxReplicas,
               current: $s.currentReplicas, desired: $s.desiredReplicas, last_scale_time: $s.lastScaleTime,
               metrics: [(.spec.metrics // [])[] | select(.type == "Resource") | .resource as $m | {
                 name: $m.name, target_percent: $m.target.averageUtilization,
                 current_percent: ([($s.currentMetrics // [])[] | select(.type == "Resource" and .resource.name == $m.name)
                                    | .resource.current.averageUtilization][0])}],
               conditions: [($s.conditions // [])[] | {type, status, reason, message}]}' \
            "$work/hpas.json" >"$work/hpa.json" || : >"$work/hpa.json"
    else
        : >"$work/hpa.json"
        problem "cannot list the HPAs ($(tr '\n' ' ' <"$work/hpa.err")): check the context ('kubectl config get-contexts') and that the cluster runs"
    fi
    if ! "${k[@]}" get deployment worker -o json >"$work/deploy.json" 2>"$work/deploy.err"; then
        : >"$work/deploy.json"
        problem "cannot read the worker deployment ($(tr '\n' ' ' <"$work/deploy.err")): apply it (kubectl apply -k config/deploy/k8s/overlays/$env_name)"
    fi
    if "${k[@]}" top pod -l app=worker --no-headers >"$work/top.txt" 2>"$work/top.err"; then
        # "NAME CPU MEMORY", e.g. "worker-7d9c-x2 250m 300Mi", as a share of
        # the worker container's requests, as the HPA counts utilisation
        # (of its limits when it has no requests).
        awk 'NF >= 3 {printf "{\"name\": \"%s\", \"cpu\": \"%s\", \"memory\": \"%s\"}\n", $1, $2, $3}' "$work/top.txt" |
            jq -c --slurpfile d "$work/deploy.json" '
                def cpu_m: if test("m$") then (.[:-1] | tonumber) elif test("n$") then (.[:-1] | tonumber / 1e6)
                    elif test("u$") then (.[:-1] | tonumber / 1e3) else (tonumber * 1000) end;
                def bytes: capture("^(?<n>[0-9.eE+]+)(?<u>[A-Za-z]*)$") as $c
                    | ($c.n | tonumber) * ({"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                        "Ki": 1024, "Mi": 1048576, "Gi": 1073741824, "Ti": 1099511627776}[$c.u] // 1);
                ($d[0].spec.template.spec.containers // [] | (map(select(.name == "worker")) + .)[0].resources // {}) as $r
                | (($r.limits // {}) + {}) as $lim | (($r.requests // {}) + {}) as $req
                | (($req.cpu // $lim.cpu) | if . == null then null else tostring | cpu_m end) as $cpu_lim
                | (($req.memory // $lim.memory) | if . == null then null else tostring | bytes end) as $mem_lim
                | (.cpu | cpu_m) as $c | (.memory | bytes) as $m
                | {name, cpu_millicores: $c, memory_bytes: ($m | floor),
                   basis: (if $req.cpu or $req.memory then "requests" elif $lim.cpu or $lim.memory then "limits" else null end),
                   cpu_percent: (if $cpu_lim then ($c / $cpu_lim * 1000 | round) / 10 else null end),
                   memory_percent: (if $mem_lim then ($m / $mem_lim * 1000 | round) / 10 else null end)}' \
                >"$work/units.json" || problem "cannot read the output of kubectl top: $(head -c 300 "$work/top.txt")"
    else
        problem "kubectl top failed ($(tr '\n' ' ' <"$work/top.err")): it needs metrics-server (minikube addons enable metrics-server -p $ctx)"
    fi
    if "${k[@]}" get events -o json >"$work/k8s-events.json" 2>/dev/null; then
        local hpa_name
        hpa_name=$(jq -r '.name' "$work/hpa.json" 2>/dev/null || true)
        jq -c --arg hpa "${hpa_name:-worker-hpa}" '[.items[]
            | select((.involvedObject.kind == "HorizontalPodAutoscaler" and .involvedObject.name == $hpa)
                or (.involvedObject.kind == "Deployment" and .involvedObject.name == "worker")
                or (.involvedObject.kind == "ReplicaSet" and (.involvedObject.name | startswith("worker-"))))
            | {time: (.lastTimestamp // .eventTime // .metadata.creationTimestamp),
               reason, object: ((.involvedObject.kind | ascii_downcase) + "/" + .involvedObject.name),
               message}]
            | sort_by(.time) | .[-10:] | .[]' "$work/k8s-events.json" >"$work/events.json" || : >"$work/events.json"
    fi
}

# ---------------------------------------------------------------- samples

# One sample of what the environment knows, as one line of JSON for
# `stratq monitor --env-file` (docs/operations.md, "monitor-workers.sh").
sample() {
    errors=()
    rm -f "$work"/*.json
    : >"$work/units.json"
    : >"$work/events.json"
    : >"$work/hpa.json"
    local source=/proc
    if [ "$env_name" = stage ] || [ "$env_name" = prod ]; then
        if [ -n "$pf_pid" ] && ! kill -0 "$pf_pid" 2>/dev/null; then
            wait "$pf_pid" 2>/dev/null || true
            pf_pid=""
            port_forward
        fi
    fi
    case $env_name in
    dev) collect_dev ;;
    stage | prod) collect_k8s ;;
    esac
    [ ! -f "$work/units.source" ] || source=$(cat "$work/units.source")
    printf '%s\n' "${errors[@]+"${errors[@]}"}" | jq -R . | jq -s 'map(select(. != ""))' >"$work/errors.json"
    jq -c -n --arg env "$env_name" --arg prog "$prog" --arg api_url "$api_url" --arg hint "$api_hint" \
        --arg source "$source" --slurpfile units "$work/units.json" --slurpfile hpa "$work/hpa.json" \
        --slurpfile events "$work/events.json" --slurpfile errors "$work/errors.json" \
        '{env: $env, prog: $prog, api_url: $api_url, api_hint: $hint, source: $source,
          units: (if $env == "local" then null else $units end), hpa: ($hpa[0] // null),
          events: $events, errors: $errors[0]}'
}

# Samples every --interval seconds, into the monitor; stops its own
# port-forward (a restarted one) when stopped.
sampler() {
    local sleep_pid=""
    trap 'kill $sleep_pid 2>/dev/null || true; stop_port_forward' EXIT
    trap 'exit 0' TERM
    while :; do
        sample
        sleep "$interval" &
        sleep_pid=$!
        wait "$sleep_pid"
    done
}

ns=${namespace:-$env_name}
ctx=${context:-minikube-$env_name}
find_api

# The token reaches stratq in its environment, never on a command line.
export STRATQ_API_TOKEN=$api_token
flags=(monitor --api-url "$api_url" --window "$window" --jobs "$jobs_limit")
[ "$once" -eq 0 ] || flags+=(--once)
[ "$json" -eq 0 ] || flags+=(--json)
if [ "$once" -eq 1 ]; then
    sample >"$work/sample.jsonl"
    rc=0
    "$stratq" "${flags[@]}" --env-file "$work/sample.jsonl" || rc=$?
    exit "$rc"
fi
mkfifo "$work/env.fifo"
sampler >"$work/env.fifo" &
sampler_pid=$!
"$stratq" "${flags[@]}" --env-file "$work/env.fifo" &
monitor_pid=$!
rc=0
wait "$monitor_pid" || rc=$?
monitor_pid=""
# The sampler stops only on a failure (a port-forward that would not come
# back): its status is the script's.
if ! kill -0 "$sampler_pid" 2>/dev/null; then
    wait "$sampler_pid" || rc=$?
    sampler_pid=""
fi
exit "$rc"
