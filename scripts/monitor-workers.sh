#!/usr/bin/env bash
# Shows the state of the stratq workers of one environment and the scaling
# guide's advice (docs/operations.md, "Scripts").
#
# Queue, workers and job times come from the stratq API in every
# environment (GET /v1/queue, /v1/workers, /v1/jobs): the API is what
# computes "processing" and which workers are live, and it is the same
# interface everywhere. How the API is reached:
#   local  up.json's api_url, written by `stratq up` in its state directory
#   dev    the port Compose publishes for the api service (docker compose port)
#   stage  kubectl port-forward to service api, for as long as the script runs
#   prod   (the API needs a bearer token there: STRATQ_API_TOKEN)
# CPU and memory per worker: /proc (local: the worker and its executor and
# jobs), docker stats (dev), kubectl top against the worker container's
# requests, as the HPA counts utilisation (stage/prod). stage/prod also show the HPA and recent scaling events.
set -euo pipefail

prog=monitor-workers.sh
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MIN_WORKERS=2
MAX_WORKERS=10

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
  with --once). Worker counts stay within $MIN_WORKERS-$MAX_WORKERS.

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
[ "$once" -eq 1 ] || window_used=$window
window_used=${window_used:-1}

need jq "install it (sudo apt-get install jq)"
need curl "install it (sudo apt-get install curl)"

work=$(mktemp -d "${TMPDIR:-/tmp}/monitor-workers.XXXXXX")
pf_pid=""
cleanup() {
    if [ -n "$pf_pid" ]; then
        kill "$pf_pid" 2>/dev/null || true
        wait "$pf_pid" 2>/dev/null || true
    fi
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

# GET from the API into a file; the token goes through curl's config on
# stdin, never argv.
api_get() {
    local path=$1 out=$2 err
    {
        if [ -n "${api_token:-}" ]; then
            printf 'header = "Authorization: Bearer %s"\n' "$api_token"
        fi
    } | curl -sS --max-time 10 --config - -o "$out" -w '%{http_code}' "$api_url$path" >"$work/code" 2>"$work/curl.err" || {
        err=$(tr '\n' ' ' <"$work/curl.err")
        : >"$out"
        problem "cannot reach the stratq API at $api_url ($err): $api_hint"
        return 1
    }
    local code
    code=$(cat "$work/code")
    case $code in
    200) return 0 ;;
    401 | 403)
        : >"$out"
        problem "the API at $api_url answered $code to GET $path: set STRATQ_API_TOKEN to one of its tokens"
        ;;
    *)
        problem "the API at $api_url answered $code to GET $path: $(head -c 300 "$out" | tr '\n' ' ')"
        : >"$out"
        ;;
    esac
    return 1
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

# ---------------------------------------------------------------- resources

# Every process: "pid ppid cpu_ticks rss_pages" (the command name may hold
# spaces and parentheses, so the fields are counted from its last ')').
proc_table() {
    # Processes end while they are read: cat's complaints are not errors.
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk '{
        i = index($0, " ("); pid = substr($0, 1, i - 1)
        j = length($0); while (j > 0 && substr($0, j, 1) != ")") j--
        n = split(substr($0, j + 2), f, " ")
        if (n >= 22) print pid, f[2], f[12] + f[13], f[22]
    }'
}

# For each worker pid on stdin: the CPU % (of one core, over one second)
# and RSS of its process tree (the worker, its executor and the jobs).
local_units() {
    local roots hz page total
    roots=$(tr '\n' ' ')
    [ -n "${roots// /}" ] || return 0
    hz=$(getconf CLK_TCK)
    page=$(getconf PAGESIZE)
    total=$(awk '/^MemTotal:/ {print $2 * 1024}' /proc/meminfo)
    proc_table >"$work/proc.before"
    sleep 1
    proc_table >"$work/proc.after"
    awk -v roots="$roots" -v hz="$hz" -v page="$page" -v total="$total" '
        FNR == 1 { part++ }
        part == 1 { t0[$1] = $3; next }
        { ppid[$1] = $2; t1[$1] = $3; rss[$1] = $4 }
        END {
            n = split(roots, root, " ")
            for (i = 1; i <= n; i++) {
                r = root[i]
                if (!(r in t1)) continue
                ticks = 0; pages = 0
                for (p in t1) {
                    q = p; depth = 0
                    while (q != r && (q in ppid) && depth < 64) { q = ppid[q]; depth++ }
                    if (q != r) continue
                    d = t1[p] - ((p in t0) ? t0[p] : 0)
                    if (d > 0) ticks += d
                    pages += rss[p]
                }
                bytes = pages * page
                printf "{\"name\": \"%s\", \"pid\": %s, \"cpu_percent\": %.1f, \"memory_bytes\": %d, \"memory_percent\": %.1f}\n",
                    r, r, ticks / hz * 100, bytes, (total > 0 ? bytes / total * 100 : 0)
            }
        }' "$work/proc.before" "$work/proc.after"
}

collect_local() {
    local host
    host=$(uname -n)
    if [ -s "$work/workers.json" ]; then
        jq -r --arg host "$host" '.workers[] | select(.host == $host and .pid != null) | .pid' "$work/workers.json" |
            local_units >"$work/units.json"
    fi
    echo "/proc" >"$work/units.source"
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
        jq -c '[.items[]? | select(.spec.scaleTargetRef.kind == "Deployment" and .spec.scaleTargetRef.name == "worker")][0] // empty' \
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
        hpa_name=$(jq -r '.metadata.name' "$work/hpa.json" 2>/dev/null || true)
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

# ---------------------------------------------------------------- report

# shellcheck disable=SC2016 # a jq program
REPORT_JQ='
def num: if type == "number" then . else null end;
def r1: if type == "number" then (. * 10 | round) / 10 else . end;
def pct($p): if length == 0 then null else sort | .[(($p / 100 * length) | ceil) - 1 | if . < 0 then 0 else . end] end;
def stats: if length == 0 then {p50: null, p95: null, mean: null}
    else {p50: (pct(50) | r1), p95: (pct(95) | r1), mean: ((add / length) | r1)} end;
def avg: map(num | select(. != null)) | if length == 0 then null else (add / length | r1) end;

($queue[0] // null) as $q
| ($workers[0].workers // null) as $w
| ($jobs[0].jobs // null) as $j
| ($hpa[0] // null) as $h
| ($w // [] | map(select(.state != "lost"))) as $live
| ($units | map({key: (.name | tostring), value: .}) | from_entries) as $by_name
| ($units | map(select(.id != null) | {key: .id[0:12], value: .}) | from_entries) as $by_id
| ($units | map(select(.pid != null) | {key: (.pid | tostring), value: .}) | from_entries) as $by_pid
| def unit_of($wk):
    if $env == "local" then $by_pid[($wk.pid | tostring)]
    else ($by_name[$wk.host // ""] // $by_id[($wk.host // "")[0:12]]) end;
{
  env: $env,
  time: (now | todate),
  time_ms: (now * 1000 | floor),
  api_url: $api_url,
  queue: (if $q == null then null else
    {name: $q.queue, pending: $q.pending, processing: $q.processing, scheduled: $q.scheduled, dead: $q.dead} end),
  workers: (if $w == null then null else {
    count: ($live | length),
    by_state: (reduce $w[] as $x ({}; .[$x.state // "unknown"] += 1)),
    list: [$w[] | . as $x | unit_of($x) as $u | {
      id, host, pid, state, current_job, jobs_done, jobs_failed,
      heartbeat_age_s: (if .last_heartbeat_ms then ((now * 1000 - .last_heartbeat_ms) / 1000 | r1) else null end),
      cpu_percent: ($u.cpu_percent // null), memory_bytes: ($u.memory_bytes // null),
      memory_percent: ($u.memory_percent // null)}]} end),
  jobs: (if $j == null then null else
    ($j | map(select(.created_ms != null and .started_ms != null and .finished_ms != null))) as $done
    | {sample: ($done | length), status: "succeeded",
       wait_s: ($done | map((.started_ms - .created_ms) / 1000) | stats),
       run_s: ($done | map((.finished_ms - .started_ms) / 1000) | stats)} end),
  resources: {source: $source, cpu_percent_avg: ($units | map(.cpu_percent) | avg),
              memory_percent_avg: ($units | map(.memory_percent) | avg), units: $units},
  hpa: (if $h == null then null else {
    name: $h.metadata.name, min: ($h.spec.minReplicas // 1), max: $h.spec.maxReplicas,
    current: $h.status.currentReplicas, desired: $h.status.desiredReplicas,
    last_scale_time: $h.status.lastScaleTime,
    metrics: [($h.spec.metrics // [])[] | select(.type == "Resource") | .resource as $m | {
      name: $m.name, target_percent: $m.target.averageUtilization,
      current_percent: ([($h.status.currentMetrics // [])[] | select(.type == "Resource" and .resource.name == $m.name)
                         | .resource.current.averageUtilization][0])}],
    conditions: [($h.status.conditions // [])[] | {type, status, reason, message}]} end),
  events: $events,
  errors: $errors
}
| . as $r
| ($r.queue.pending) as $pending
| ($r.workers.count // $r.hpa.current) as $n
| ($r.jobs.wait_s.mean) as $wait
| ($r.resources.cpu_percent_avg) as $cpu
| ($r.resources.memory_percent_avg) as $mem
| ($history + [{pending: $pending}] | .[-$window:]) as $hist
| (if ($hist | length) > 1 then "in each of the last \($hist | length) samples" else "now" end) as $when
| [ (if $pending != null and ($hist | all(.pending != null and .pending > 5)) then "queue length \($pending) > 5 \($when)" else empty end),
    (if $wait != null and $wait > 30 then "average wait \($wait) s > 30 s (last \($r.jobs.sample) jobs)" else empty end),
    (if $cpu != null and $cpu > 80 then "CPU utilisation \($cpu)% > 80%" else empty end),
    (if $mem != null and $mem > 80 then "memory utilisation \($mem)% > 80%" else empty end) ] as $up
| ($pending != null and ($hist | all(.pending == 0))) as $idle
| ($cpu != null and $cpu < 30 and ($mem == null or $mem < 30)) as $cool
| (if ($up | length) > 0 then "scale_up" elif $idle and $cool and $n != null then "scale_down" else "hold" end) as $wanted
| (if $wanted == "scale_up" then $up
   elif $wanted == "scale_down" then
     ["queue at 0 \($when)", "CPU utilisation \($cpu)% < 30%"] + (if $mem != null then ["memory utilisation \($mem)% < 30%"] else [] end)
   elif $pending == null then ["queue length unknown"]
   elif $idle and $cpu == null then ["queue at 0 \($when), but CPU and memory utilisation are unknown"]
   else ["within the guide'"'"'s bounds: queue \($pending), average wait \($wait // "-") s, CPU \($cpu // "-")%, memory \($mem // "-")%"] end) as $reasons
| (if $n == null then null
   elif $wanted == "scale_up" then ([$n + ([1, ((($pending // 0) - 5) / 5 | ceil)] | max), $max] | min)
   elif $wanted == "scale_down" then ([$n - 1, $min] | max)
   else $n end) as $suggested
| (if $wanted == "hold" or $suggested != $n then $wanted else "hold" end) as $action
| (if $wanted == "scale_up" and $action == "hold" then
     "already at the guide'"'"'s maximum of \($max) workers: make the jobs cheaper or give each worker more CPU and memory"
   elif $wanted == "scale_down" and $action == "hold" then "already at the guide'"'"'s minimum of \($min) workers"
   elif $action != "hold" and $r.hpa != null then
     "the HPA \($r.hpa.name) (min \($r.hpa.min), max \($r.hpa.max)) manages the count and may get there by itself; --pin holds the count until you patch the HPA back (scale-workers.sh prints how)"
   else null end) as $note
| $r + {advice: {
    action: $action,
    wanted: $wanted,
    reasons: $reasons,
    workers: $n,
    suggested_workers: $suggested,
    command: (if $action != "hold" then
       "scripts/scale-workers.sh \($env) \($suggested)" + (if $r.hpa != null then " --pin" else "" end) else null end),
    note: $note}}
'

# shellcheck disable=SC2016 # a jq program
TEXT_JQ='
def v: if . == null then "-" else tostring end;
def secs: if . == null then "-" else "\(.) s" end;
def mib: if . == null then "-" else "\((. / 1048576 * 10 | round) / 10) MiB" end;
def pad($n): tostring | if length >= $n then . + " " else . + (" " * ($n - length)) end;
"stratq workers: \(.env)  \(.time)  (API \(.api_url // "-"))",
(if .queue then "queue     pending \(.queue.pending)  processing \(.queue.processing)  scheduled \(.queue.scheduled)  dead \(.queue.dead)"
 else "queue     unknown" end),
(if .workers then
   "workers   \(.workers.count) live (\(.workers.by_state | to_entries | map("\(.key) \(.value)") | join(", ")))",
   "  " + ("ID" | pad(24)) + ("STATE" | pad(9)) + ("JOB" | pad(30)) + ("DONE" | pad(7)) + ("FAILED" | pad(7)) + ("CPU%" | pad(7)) + "MEMORY",
   (.workers.list[] | "  " + (.id | pad(24)) + (.state | v | pad(9)) + (.current_job | v | pad(30))
      + (.jobs_done | v | pad(7)) + (.jobs_failed | v | pad(7)) + (.cpu_percent | v | pad(7)) + (.memory_bytes | mib))
 else "workers   unknown" end),
(if .jobs then
   "jobs      last \(.jobs.sample) succeeded: wait p50 \(.jobs.wait_s.p50 | secs), p95 \(.jobs.wait_s.p95 | secs), mean \(.jobs.wait_s.mean | secs); run p50 \(.jobs.run_s.p50 | secs), p95 \(.jobs.run_s.p95 | secs)"
 else "jobs      unknown" end),
"resources \(.resources.source): CPU \(.resources.cpu_percent_avg | v)% and memory \(.resources.memory_percent_avg | v)% on average",
(.resources.units[] | "  " + (.name | pad(24)) + "CPU \(.cpu_percent | v)%  memory \(.memory_bytes | mib) (\(.memory_percent | v)%)"),
(if .hpa then
   "hpa       \(.hpa.name): min \(.hpa.min), max \(.hpa.max), current \(.hpa.current | v), desired \(.hpa.desired | v); "
   + (.hpa.metrics | map("\(.name) \(.current_percent | v)% of target \(.target_percent | v)%") | join(", "))
   + (if .hpa.last_scale_time then "; last scaled \(.hpa.last_scale_time)" else "" end)
 else empty end),
(if (.events | length) > 0 then "events", (.events[] | "  \(.time)  \(.reason)  \(.object)  \(.message)") else empty end),
"advice    " + (.advice.action | ascii_upcase | sub("_"; " "))
   + (if .advice.suggested_workers != null and .advice.suggested_workers != .advice.workers then " to \(.advice.suggested_workers) workers" else "" end)
   + ": " + (.advice.reasons | join("; ")),
(if .advice.command then "          run: \(.advice.command)" else empty end),
(if .advice.note then "          note: \(.advice.note)" else empty end),
(.errors[] | "error     \(.)")
'

history='[]'
ns=${namespace:-$env_name}
ctx=${context:-minikube-$env_name}
find_api

sample() {
    errors=()
    rm -f "$work"/*.json "$work/units.source"
    : >"$work/units.json"
    : >"$work/events.json"
    if [ "$env_name" = stage ] || [ "$env_name" = prod ]; then
        if [ -n "$pf_pid" ] && ! kill -0 "$pf_pid" 2>/dev/null; then
            wait "$pf_pid" 2>/dev/null || true
            pf_pid=""
            port_forward
        fi
    fi
    api_get /v1/queue "$work/queue.json" || true
    api_get /v1/workers "$work/workers.json" || true
    api_get "/v1/jobs?status=succeeded&limit=$jobs_limit" "$work/jobs.json" || true
    case $env_name in
    local) collect_local ;;
    dev) collect_dev ;;
    stage | prod) collect_k8s ;;
    esac
    local f
    for f in queue workers jobs hpa; do
        [ -f "$work/$f.json" ] || : >"$work/$f.json"
    done
    local errs
    errs=$(printf '%s\n' "${errors[@]+"${errors[@]}"}" | jq -R . | jq -s 'map(select(. != ""))')
    jq -n --arg env "$env_name" --arg api_url "$api_url" --arg source "$(cat "$work/units.source" 2>/dev/null || echo none)" \
        --argjson history "$history" --argjson window "$window_used" --argjson errors "$errs" \
        --argjson min $MIN_WORKERS --argjson max $MAX_WORKERS \
        --slurpfile queue "$work/queue.json" --slurpfile workers "$work/workers.json" \
        --slurpfile jobs "$work/jobs.json" --slurpfile hpa "$work/hpa.json" \
        --slurpfile units "$work/units.json" --slurpfile events "$work/events.json" \
        "$REPORT_JQ" >"$work/report.json"
    history=$(jq -c --argjson h "$history" --argjson window "$window_used" \
        '$h + [{pending: .queue.pending}] | .[-$window:]' "$work/report.json")
}

print_report() {
    if [ "$json" -eq 1 ]; then
        if [ "$once" -eq 1 ]; then jq . "$work/report.json"; else jq -c . "$work/report.json"; fi
    else
        jq -r "$TEXT_JQ" "$work/report.json"
    fi
}

while :; do
    sample
    print_report
    if [ "$once" -eq 1 ]; then
        if [ ${#errors[@]} -gt 0 ]; then
            printf '%s: %s\n' "$prog" "${errors[@]}" >&2
            exit 1
        fi
        exit 0
    fi
    [ ${#errors[@]} -eq 0 ] || printf '%s: %s\n' "$prog" "${errors[@]}" >&2
    [ "$json" -eq 1 ] || echo
    sleep "$interval"
done
