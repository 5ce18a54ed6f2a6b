#!/usr/bin/env python3
"""Chooses the "nothing matches" floor for queries holding a word the corpus never saw
(`RelevanceFloor::with_unknown_word` in src/search.rs) on training queries only.

The answerable side is the training queries of train/queries (those scripts/train_search_model.py
holds out, 1 in 6 by the sha256 of the text, are counted apart: the search model never trained on
them), the other side the queries of train/no-match/queries.jsonl (Python subjects the corpus does
not cover, other programming, everyday subjects, gibberish). Runs `askmark eval search
--observations` over both and prints, per floor, the share of no-match queries emptied and the
training queries emptied. The chosen floor is the highest (in steps of 0.01) that empties no
training query beyond what the plain floor `any` already empties: the 267 held-out queries alone
cannot show a cost of 1% (they chose 0.44, which on the unseen eval queries emptied 2.3% of the
answerable ones). eval/queries.toml is not read.

Usage: scripts/no_match_floor.py --askmark target/release/askmark --index DIR
"""

import argparse
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOLD_OUT_MODULUS = 6  # scripts/train_search_model.py --hold-out-modulus
ANY, WITHOUT_LEXICAL = 0.30, 0.40  # RelevanceFloor's other two floors


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--askmark", default=str(ROOT / "target/release/askmark"))
    parser.add_argument("--index", required=True)
    args = parser.parse_args()
    training = [r for path in sorted((ROOT / "train/queries").glob("*.jsonl")) for r in rows(path)]
    held_out = {r["query"] for r in training if int(hashlib.sha256(r["query"].encode()).hexdigest(), 16) % HOLD_OUT_MODULUS == 0}
    no_match = rows(ROOT / "train/no-match/queries.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        queries, observations = Path(tmp) / "queries.toml", Path(tmp) / "observations.jsonl"
        with queries.open("w") as out:
            for r in training + no_match:
                relevant = json.dumps(r["question_id"]) if r["question_id"] else ""
                out.write(f"[[queries]]\nquery = {json.dumps(r['query'])}\nkind = {json.dumps(r.get('group', r['kind']))}\nrelevant = [{relevant}]\n\n")
        subprocess.run([args.askmark, "--index", args.index, "eval", "search", "--queries", str(queries), "--observations", str(observations)],
                       check=True, stdout=subprocess.DEVNULL)
        observed = rows(observations)

    def empty(o, floor):
        best = o["best_semantic"]
        return best < ANY or (o["lexical_hits"] == 0 and best < WITHOUT_LEXICAL) or (o["unknown_words"] > 0 and best < floor)

    answerable = [o for o in observed if o["answerable"]]
    nothing = [o for o in observed if not o["answerable"]]
    groups = sorted({o["kind"] for o in nothing})
    print(f"{len(answerable)} training queries ({len(held_out)} held out), {len(nothing)} no-match training queries\n")
    print("| floor with an unknown word | no-match emptied | " + " | ".join(groups) + " | training queries emptied | of them held out |")
    print("|---" * (len(groups) + 4) + "|")
    base = sum(empty(o, ANY) for o in answerable)
    chosen = ANY
    for step in range(30, 61):
        floor = step / 100
        emptied = sum(empty(o, floor) for o in answerable)
        emptied_held_out = sum(empty(o, floor) for o in answerable if o["query"] in held_out)
        if emptied <= base:
            chosen = floor
        by_group = [f"{sum(empty(o, floor) for o in nothing if o['kind'] == g)}/{sum(o['kind'] == g for o in nothing)}" for g in groups]
        print(f"| {floor:.2f} | {sum(empty(o, floor) for o in nothing) / len(nothing):.3f} | " + " | ".join(by_group) + f" | {emptied} | {emptied_held_out} |")
    print(f"\nchosen: {chosen:.2f} (the highest emptying no training query beyond the {base} that {ANY:.2f} alone empties)")


if __name__ == "__main__":
    main()
