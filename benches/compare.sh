#!/usr/bin/env bash
# askmark against its Python peer (issue 14), side by side in one run on loopback with wrk (Debian
# package `wrk`). The peer, benches/peer/app.py, is what a user would otherwise write in an
# afternoon: FastAPI + uvicorn (PEER_WORKERS workers x PEER_THREADS ONNX Runtime threads, default
# 2 x 1), the same ONNX model, rank_bm25, qdrant-client local mode, RRF, the same corpus.
#
# Measures, in ROUNDS interleaved rounds (default 3; the order of the two services alternates) of
# DURATION seconds per run (default 15): GET /v1/search rotating over the queries of
# eval/queries.toml at 1, 8 and 32 connections, once with a request counter appended to every
# query ("search-unique": each request misses askmark's query cache) and once as they are
# ("search": repeated queries), and POST /v1/review with the "excellent" answers of
# eval/answers.toml at 1 and 8 connections. Prints a markdown table of medians over the rounds:
# 2xx answers per second, p50 / p99 latency, non-2xx answers, CPU used (cores busy: utime + stime
# of the service's process tree over the run, uvicorn's workers included), and askmark / peer.
# wrk runs on the same machine and takes its share of the cores, the same for both services.
# Last, the floor every figure is a ratio to: the bare model's embedding cost, no service.
#
# Usage: benches/compare.sh   (after scripts/setup-model and cargo build --release)
#        DURATION=15 ROUNDS=3 ASKMARK_INDEX=/tmp/bench-index benches/compare.sh
# Env:   ASKMARK_BIN (target/release/askmark), ASKMARK_INDEX (index), ASKMARK_OPTS (more askmark
#        options, e.g. "--model-threads 2"), PEER_VENV (benches/peer/.venv, created and filled from
#        benches/peer/requirements.txt when missing or stale), PEER_WORKERS, PEER_THREADS,
#        ENDPOINTS ("search-unique search review"), SEARCH_CONNECTIONS ("1 8 32"),
#        REVIEW_CONNECTIONS ("1 8"), WARMUP (3 s per service and
#        endpoint, not counted), STARTUP_TIMEOUT (900 s; askmark builds a missing index first).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
duration="${DURATION:-15}"
rounds="${ROUNDS:-3}"
warmup="${WARMUP:-3}"
search_connections="${SEARCH_CONNECTIONS:-1 8 32}"
review_connections="${REVIEW_CONNECTIONS:-1 8}"
endpoints="${ENDPOINTS:-search-unique search review}"
binary="${ASKMARK_BIN:-target/release/askmark}"
index="${ASKMARK_INDEX:-index}"
venv="${PEER_VENV:-benches/peer/.venv}"
export PEER_WORKERS="${PEER_WORKERS:-2}" PEER_THREADS="${PEER_THREADS:-1}" PEER_HOST=127.0.0.1 PYTHONDONTWRITEBYTECODE=1
hz=$(getconf CLK_TCK)

[ -x "$binary" ] || { echo "no askmark binary at $binary (cargo build --release, or set ASKMARK_BIN)"; exit 1; }
if ! command -v wrk >/dev/null; then
    echo "installing wrk (apt-get install -y wrk)" >&2
    apt-get install -y -qq wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
fi
# The peer's venv, (re)filled whenever requirements.txt differs from the copy it was filled from.
if ! cmp -s benches/peer/requirements.txt "$venv/.requirements.txt" 2>/dev/null; then
    echo "filling $venv from benches/peer/requirements.txt" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r benches/peer/requirements.txt >&2
    cp benches/peer/requirements.txt "$venv/.requirements.txt"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# A process and all its descendants (uvicorn's supervisor and its workers).
tree() {
    echo "$1"
    local child
    for child in $(pgrep -P "$1" || true); do tree "$child"; done
}
# CPU time (clock ticks, user + system) used so far by a process tree.
cpu_ticks() {
    local total=0 pid stat fields
    for pid in $(tree "$1"); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        fields=(${stat##*') '})  # after "pid (comm) ": state is fields[0], utime [11], stime [12]
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
rss_mb() {
    local total=0 pid kb
    for pid in $(tree "$1"); do
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || continue
        total=$((total + ${kb:-0}))
    done
    echo $((total / 1024))
}

work="$(mktemp -d)"
services=()
cleanup() {
    local all=() pid alive
    for pid in "${services[@]}"; do all+=($(tree "$pid")); done
    if [ ${#all[@]} -gt 0 ]; then
        kill "${all[@]}" 2>/dev/null || true
        for _ in $(seq 40); do
            alive=()
            for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
            [ ${#alive[@]} -eq 0 ] && break
            sleep 0.25
        done
        [ ${#alive[@]} -gt 0 ] && kill -9 "${alive[@]}" 2>/dev/null
    fi
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

askmark_port=$(free_port)
peer_port=$(free_port)
# shellcheck disable=SC2086  # ASKMARK_OPTS is a list of options
"$binary" --index "$index" ${ASKMARK_OPTS:-} serve --addr "127.0.0.1:$askmark_port" --reviews-per-minute 1000000 \
    >"$work/askmark.log" 2>&1 &
askmark=$!
services+=("$askmark")
"$venv/bin/python" benches/peer/app.py "$peer_port" >"$work/peer.log" 2>&1 &
peer=$!
services+=("$peer")

# Ready once /readyz answers (and, for the peer, every uvicorn worker has finished its start-up:
# each embeds the corpus itself).
wait_ready() {  # name pid port log workers
    local deadline=$((SECONDS + ${STARTUP_TIMEOUT:-900}))
    until curl -fsS "http://127.0.0.1:$3/readyz" >/dev/null 2>&1 \
        && [ "$(grep -c 'Application startup complete' "$4" || true)" -ge "$5" ]; do
        kill -0 "$2" 2>/dev/null || { echo "$1 exited:"; cat "$4"; exit 1; }
        [ "$SECONDS" -lt "$deadline" ] || { echo "$1 not ready after ${STARTUP_TIMEOUT:-900} s:"; tail -20 "$4"; exit 1; }
        sleep 0.5
    done
}
echo "starting askmark (:$askmark_port) and the peer (:$peer_port)" >&2
wait_ready askmark "$askmark" "$askmark_port" "$work/askmark.log" 0
wait_ready peer "$peer" "$peer_port" "$work/peer.log" "$PEER_WORKERS"

# The wrk scripts: search, search-unique and review (see benches/wrk_scripts.py).
python3 benches/wrk_scripts.py "$work"

# One wrk run; appends "endpoint connections service rps p50 p99 requests non2xx socket_errors cores".
runs=0
run() {  # service pid port endpoint connections seconds [record]
    local threads=$(($5 < 2 ? 1 : 2)) before after started ended line cores
    before=$(cpu_ticks "$2")
    started=$EPOCHREALTIME
    runs=$((runs + 1))
    line=$(wrk -t "$threads" -c "$5" -d "$6s" --timeout 10s -s "$work/$4.lua" "http://127.0.0.1:$3" -- "$runs" | grep '^RESULT') \
        || { echo "wrk failed against $1"; exit 1; }
    ended=$EPOCHREALTIME
    after=$(cpu_ticks "$2")
    cores=$(awk -v t=$((after - before)) -v hz="$hz" -v s="$started" -v e="$ended" 'BEGIN { printf "%.2f", t / hz / (e - s) }')
    if [ -n "${7:-}" ]; then
        echo "$4 $5 $1 ${line#RESULT } $cores" >>"$work/results"
        read -r _ rps p50 p99 _ non2xx errors <<<"$line"
        printf '  %-6s x%-2s %-7s %8s req/s  p50 %7s ms  p99 %7s ms  non-2xx %s  errors %s  CPU %s\n' \
            "$4" "$5" "$1" "$rps" "$p50" "$p99" "$non2xx" "$errors" "$cores" >&2
    fi
    sleep 1  # let the last answers drain before the next run
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "warming up (${warmup} s per service and endpoint)" >&2
for endpoint in search-unique review; do
    run askmark "$askmark" "$askmark_port" "$endpoint" 1 "$warmup"
    run peer "$peer" "$peer_port" "$endpoint" 1 "$warmup"
done
for round in $(seq "$rounds"); do
    echo "round $round/$rounds" >&2
    if ((round % 2)); then order="askmark peer"; else order="peer askmark"; fi
    for endpoint in $endpoints; do
        if [ "$endpoint" = review ]; then list=$review_connections; else list=$search_connections; fi
        for connections in $list; do
            for service in $order; do
                if [ "$service" = askmark ]; then
                    run askmark "$askmark" "$askmark_port" "$endpoint" "$connections" "$duration" record
                else
                    run peer "$peer" "$peer_port" "$endpoint" "$connections" "$duration" record
                fi
            done
        done
    done
done
askmark_rss=$(rss_mb "$askmark")
peer_rss=$(rss_mb "$peer")
kill "$askmark" "$peer" 2>/dev/null || true

# The floor: the bare model, no service, on the now idle machine: one query at a time, 1 and 2
# ONNX Runtime threads, and one 180-260-word reference answer (what a review embeds at most).
floor=$(PYTHONPATH=benches/peer "$venv/bin/python" - <<'PY'
import glob, statistics, time, tomllib
from pathlib import Path
from app import Embedder, MODEL
queries = [q["query"] for q in tomllib.load(open("eval/queries.toml", "rb"))["queries"]]
answers = [q["answer"] for f in sorted(glob.glob("corpus/*.toml")) for q in tomllib.load(open(f, "rb"))["questions"]
           if 180 <= len(q["answer"].split()) <= 260]
def p50(embedder, texts):
    times = []
    for text in texts:
        started = time.perf_counter()
        embedder.embed([text])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)
for threads in (1, 2):
    embedder = Embedder(MODEL, threads)
    p50(embedder, queries[:20])
    print(f"{threads} thread{'s' if threads > 1 else ''}: query p50 {p50(embedder, queries):.2f} ms, "
          f"200-word answer p50 {p50(embedder, answers * 3):.1f} ms;", end=" ")
PY
)

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -z "$(git status --porcelain -- src Cargo.toml Cargo.lock benches/peer 2>/dev/null)" ] || commit="$commit (modified)"
echo
echo "askmark $binary at $commit ${ASKMARK_OPTS:+($ASKMARK_OPTS) }against the peer (uvicorn $PEER_WORKERS workers x $PEER_THREADS ONNX Runtime threads);"
echo "$(nproc) cores, load average before the runs $load_before; $rounds rounds of $duration s, medians."
echo
python3 - "$work/results" <<'PY'
import statistics, sys
ENDPOINTS = ["search-unique", "search", "review"]
rows = {}
for line in open(sys.argv[1]):
    endpoint, connections, service, rps, p50, p99, requests, non2xx, errors, cores = line.split()
    rps, requests, non2xx = float(rps), int(requests), int(non2xx)
    ok = rps * (requests - non2xx) / requests if requests else 0.0
    rows.setdefault((endpoint, int(connections)), {}).setdefault(service, []).append(
        (ok, float(p50), float(p99), non2xx, int(errors), float(cores)))

def median(runs, field):
    return statistics.median(run[field] for run in runs)

def cells(runs):
    if not runs:
        return ["-"] * 4
    failed = f"{median(runs, 3):g}"
    if median(runs, 4):
        failed += f" (+{median(runs, 4):g} socket errors)"
    rate = median(runs, 0)
    return [f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}", f"{median(runs, 1):.1f} / {median(runs, 2):.1f}", failed, f"{median(runs, 5):.2f}"]

print("| endpoint | connections | askmark req/s | askmark p50 / p99 ms | askmark non-2xx | askmark CPU"
      " | peer req/s | peer p50 / p99 ms | peer non-2xx | peer CPU | askmark ÷ peer req/s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (endpoint, connections), services in sorted(rows.items(), key=lambda item: (ENDPOINTS.index(item[0][0]), item[0][1])):
    askmark, peer = services.get("askmark", []), services.get("peer", [])
    ratio = "-"
    if askmark and peer and median(peer, 0) > 0:
        ratio = f"{median(askmark, 0) / median(peer, 0):.2f}×"
    print(f"| {endpoint} | {connections} | " + " | ".join(cells(askmark) + cells(peer)) + f" | {ratio} |")
PY
echo
echo "req/s counts 2xx answers only; CPU is cores kept busy by the service's processes during a run."
echo "RSS after the runs: askmark $askmark_rss MB, peer $peer_rss MB (all its processes)."
echo "bare embedding (ONNX Runtime, the same model, no service): $floor"
