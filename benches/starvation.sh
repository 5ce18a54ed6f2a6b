#!/usr/bin/env bash
# Does review work starve search? (issue 12 §4) Hybrid search latency from one sequential client,
# first alone, then while REVIEWERS clients (default 4) keep sending maximal reviews: 10,000-
# character answers of 2,500 one-word sentences, the most sentences an answer can hold. Prints a
# markdown table; the goal is search p50 under review load within 2x of search p50 alone.
# The review rate limit is lifted so the reviewers never pause (the worst case, not a 429 test).
# Usage: benches/starvation.sh   (after scripts/setup-model and cargo build --release)
#        DURATION=20 REVIEWERS=4 ASKMARK_INDEX=index benches/starvation.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
duration="${DURATION:-15}"
reviewers="${REVIEWERS:-4}"
binary="${ASKMARK_BIN:-target/release/askmark}"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work="$(mktemp -d)"
"$binary" --index "${ASKMARK_INDEX:-index}" serve --addr "127.0.0.1:$port" --reviews-per-minute 1000000 \
    >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 $server 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.5
done

python3 - "$port" "$duration" "$reviewers" <<'PY'
import http.client, itertools, json, statistics, sys, threading, time, tomllib, urllib.parse

port, duration, reviewers = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
queries = [q["query"] for q in tomllib.load(open("eval/queries.toml", "rb"))["queries"]]
words = ["It", "Is", "On", "In", "Go", "So", "No", "Up", "By", "We", "Us", "Me", "Do", "If", "Or", "An"]
# 2,500 sentences of a two-letter word, a period and a space: exactly 10,000 characters.
answer = "".join(f"{words[n % len(words)]}. " for n in range(2500))
assert len(answer) == 10_000
review_body = json.dumps({"question_id": "gil", "answer": answer})

def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")

searched = itertools.count()

def search_for(seconds):
    """Sequential hybrid searches over the eval queries, each made unique with trailing spaces
    (no search of any run is answered from the caches); latencies (ms) of 200s and other statuses."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    latencies, others = [], {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        n = next(searched)
        query = queries[n % len(queries)] + " " * (1 + n // len(queries))
        path = "/v1/search?" + urllib.parse.urlencode({"q": query})
        started = time.monotonic()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            latencies.append((time.monotonic() - started) * 1000)
        else:
            others[response.status] = others.get(response.status, 0) + 1
    return latencies, others

stop = threading.Event()
review_statuses, review_lock = {}, threading.Lock()

def reviewer():
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    while not stop.is_set():
        connection.request("POST", "/v1/review", review_body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        with review_lock:
            review_statuses[response.status] = review_statuses.get(response.status, 0) + 1

search_for(2)  # warm up
alone, alone_others = search_for(duration)
threads = [threading.Thread(target=reviewer, daemon=True) for _ in range(reviewers)]
for thread in threads:
    thread.start()
time.sleep(2)  # let the reviews get going
loaded, loaded_others = search_for(duration)
stop.set()

def row(label, latencies, others):
    p50, p90 = percentile(latencies, 0.5), percentile(latencies, 0.9)
    other = ", ".join(f"{status}: {count}" for status, count in sorted(others.items())) or "none"
    print(f"| {label} | {len(latencies)} | {p50:.1f} | {p90:.1f} | {max(latencies, default=float('nan')):.1f} | {other} |")
    return p50

print(f"| hybrid search ({duration:.0f} s, 1 client) | searches | p50 ms | p90 ms | max ms | non-200 |")
print("|---|---|---|---|---|---|")
base = row("alone", alone, alone_others)
under = row(f"with {reviewers} clients sending maximal reviews", loaded, loaded_others)
statuses = ", ".join(f"{status}: {count}" for status, count in sorted(review_statuses.items())) or "none finished"
print(f"\nreviews answered during the loaded run: {statuses}")
ratio = under / base if base else float("inf")
print(f"search p50 under review load / alone: {ratio:.1f}x (goal: at most 2x)")
PY
