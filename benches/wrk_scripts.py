#!/usr/bin/env python3
"""Writes the wrk scripts the load benchmarks share (benches/load.sh, benches/compare.sh) into DIR:

  search.lua         GET /v1/search rotating over the queries of eval/queries.toml
  search-unique.lua  the same queries padded with spaces: leading ones numbering the wrk run (its
                     argument, `wrk ... -- N`) and trailing ones a different number on every
                     request of every wrk thread. The words, and so BM25 and the embedding, stay
                     the same, but every request misses askmark's query cache.
  review.lua         POST /v1/review rotating over the "excellent" answers of eval/answers.toml

done() prints one line: RESULT requests/s p50-ms p99-ms requests non-2xx socket-errors.
Usage: python3 benches/wrk_scripts.py DIR   (from the repository root)
"""

import json
import sys
import tomllib
import urllib.parse
from pathlib import Path

TEMPLATE = """\
local items = ITEMS
local n = 0
local sent = 0
local threads = 0
local run = 0
init = function(args)
  run = tonumber(args[1]) or 0
end
setup = function(thread)
  thread:set('id', threads)
  threads = threads + 1
end
request = function()
  n = n % #items + 1
  sent = sent + 1
  return REQUEST
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT %.1f %.2f %.2f %d %d %d\\n', summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.requests, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""

REQUESTS = {
    "search": "wrk.format('GET', items[n])",
    "search-unique": "wrk.format('GET', '/v1/search?q=' .. string.rep('+', run) .. items[n]\n"
    "    .. string.rep('+', math.floor((sent - 1) / #items) * 4 + id + 1))",
    "review": "wrk.format('POST', '/v1/review', {['Content-Type'] = 'application/json'}, items[n])",
}


def main():
    out = Path(sys.argv[1])
    queries = [q["query"] for q in tomllib.load(open("eval/queries.toml", "rb"))["queries"]]
    answers = [a for a in tomllib.load(open("eval/answers.toml", "rb"))["answers"] if a["kind"] == "excellent"]
    items = {
        "search": ["/v1/search?" + urllib.parse.urlencode({"q": q}) for q in queries],
        "search-unique": [urllib.parse.quote_plus(q) for q in queries],
        "review": [json.dumps({"question_id": a["question_id"], "answer": a["answer"]}) for a in answers],
    }
    for name, request in REQUESTS.items():
        table = "{" + ",".join(json.dumps(item) for item in items[name]) + "}"
        (out / f"{name}.lua").write_text(TEMPLATE.replace("REQUEST", request).replace("ITEMS", table))


if __name__ == "__main__":
    main()
