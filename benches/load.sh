#!/usr/bin/env bash
# Load test of a release server on loopback with wrk (Debian package `wrk`): search and review
# at 1, 8 and 64 concurrent connections, DURATION seconds each (default 15). Prints a markdown
# table: requests/s, p50, p99, and non-2xx answers (503 overloaded is the designed back-pressure).
# Usage: benches/load.sh   (after scripts/setup-model and cargo build --release)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
duration="${DURATION:-15}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)"; exit 1; }
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work="$(mktemp -d)"
target/release/askmark --index "${ASKMARK_INDEX:-index}" --model-threads "${ASKMARK_MODEL_THREADS:-2}" serve \
    --addr "127.0.0.1:$port" --reviews-per-minute 1000000 >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 $server 2>/dev/null || { cat "$work/server.log"; exit 1; }
    sleep 0.5
done

# Rotates over the eval queries so the query-embedding path is exercised, not one cached query.
python3 benches/wrk_scripts.py "$work"

echo "| endpoint | connections | requests/s | p50 ms | p99 ms | requests | non-2xx |"
echo "|---|---|---|---|---|---|---|"
for endpoint in search review; do
    for connections in 1 8 64; do
        threads=$(( connections < 2 ? 1 : 2 ))
        line=$(wrk -t "$threads" -c "$connections" -d "${duration}s" --timeout 10s -s "$work/$endpoint.lua" \
            "http://127.0.0.1:$port" | grep '^RESULT')
        read -r _ rps p50 p99 total non2xx _ <<<"$line"
        echo "| $endpoint | $connections | $rps | $p50 | $p99 | $total | $non2xx |"
    done
done
