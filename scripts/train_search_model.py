#!/usr/bin/env python3
"""Fine-tune askmark's sentence model (all-MiniLM-L6-v2) for search: issue 15, lever (a).

The bi-encoder is trained with in-batch negatives (multiple-negatives ranking loss) on the
(query, question) pairs of train/queries/*.jsonl: the anchor is a training query, the positive
its question's text and/or its reference answer, every other question of the batch a negative.
Batches are filled round-robin over the questions so that a batch holds at most one query of a
question; columns of the same question are masked all the same, should a batch span two rounds.

Search indexes two vectors a question (src/index.rs, src/search.rs): the embedding of the
question text and of the reference answer (both cut at 256 tokens); the semantic score of a
question is max(q, 0.25 q + 0.75 a), q and a the query's cosines to them, plus 0.3 x the
cosine to its closest key point (`FusionParams::key_point_weight`; held-out selection and the
eval tables score that way). Positive modes:

    question   loss over the question texts only
    both       loss over the question texts + loss over the answers
    fused      one loss over the fused score max(q, 0.25 q + 0.75 a)
    fused-kp   one loss over the score search serves: the fused score + 0.3 x the closest key point

Answers are long (400-700 tokens, 256 kept), and a backward pass through 64 of them costs
~15x a batch of queries and question texts; so the answer side is a cache: every answer is
embedded (no gradient) with the current model at the start of each epoch, and the loss on a
(or the fused score) moves the query towards it. The question text side is trained live.

Data hygiene:
  - eval/queries.toml is read only to drop training queries that repeat an eval query (same
    words after normalisation, or token Jaccard >= 0.75): those would leak the eval.
  - 1 training query in --hold-out-modulus (by the sha256 of its text) is held out; the epoch
    and the setting (positive mode, learning rate) are chosen on it, never on the eval.

Then base vs tuned on eval/queries.toml, pure semantic search: hit@1, hit@3, MRR@10 per kind and
overall (kind "none" excluded), the best score of the "none" queries against the answerable ones
and a table of relevance floors; and Spearman on STS-B test (../shared/data/nli/stsb_test), to
check the model still knows general English.

Writes --out: model.safetensors, config.json, tokenizer.json (copied), model.onnx (by
scripts/export_minilm_onnx.py's build_model, checked against torch: pooled + normalised cosine
> 0.9999 on 20 sentences) and report.json.
"""

import argparse
import copy
import gzip
import hashlib
import json
import math
import random
import re
import shutil
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from minilm_torch import MiniLM  # noqa: E402
from training_data import jsonl_folder, sha256_file  # noqa: E402

MAX_LENGTH = 256  # as the index embeds (models/manifest.json)
ANSWER_WEIGHT = 0.75  # FusionParams::default().answer_weight
KEY_POINT_WEIGHT = 0.3  # FusionParams::default().key_point_weight
LEAK_JACCARD = 0.75
EVAL_KINDS = ["keyword", "typo", "paraphrase", "natural", "concept", "versus"]
FLOORS = [0.20, 0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60]
# Besides the fixed floors: the lowest floor that turns away this share of the "none" queries.
NO_MATCH_RECALL_TARGET = 0.9
# For the ONNX check: domain and general sentences, short and long.
CHECK_SENTENCES = [
    "How do you define a function in Python?",
    "anonymous one-line function",
    "wrap a function to add behavior",
    "the lock that stops two threads running bytecode at once",
    "is python pass by reference or value",
    "qwertyuiop",
    "how do I bake bread",
    "The weather is lovely today.",
    "A man is playing a guitar on stage while the crowd sings along.",
    "venv pip",
    "custom exeptions raise",
    "What is the difference between a list and a tuple?",
    "asyncio.to_thread vs run_in_executor",
    "Explain asynchronous programming vs multithreading",
]


# ---------------------------------------------------------------------------------------- data


def words(text):
    return re.findall(r"\w+", text.lower())


def load_corpus():
    questions = []
    for path in sorted((ROOT / "corpus").glob("*.toml")):
        questions += tomllib.loads(path.read_text())["questions"]
    return questions


def load_eval():
    return tomllib.loads((ROOT / "eval/queries.toml").read_text())["queries"]


def leaks_eval(query, eval_sets, eval_norms):
    """Whether a training query repeats an eval query (same words, or token Jaccard >= 0.75)."""
    if " ".join(words(query)) in eval_norms:
        return True
    mine = set(words(query))
    return any(mine and len(mine & other) / len(mine | other) >= LEAK_JACCARD for other in eval_sets)


def training_queries(eval_queries, modulus):
    """(train, held_out, dropped_as_leaks, files): rows of question_id, query, kind."""
    eval_norms = {" ".join(words(q["query"])) for q in eval_queries}
    eval_sets = [set(words(q["query"])) for q in eval_queries]
    rows, files = jsonl_folder(ROOT / "train/queries", ROOT)
    train, held_out, dropped = [], [], []
    for row in rows:
        if leaks_eval(row["query"], eval_sets, eval_norms):
            dropped.append(row)
        elif int(hashlib.sha256(row["query"].encode()).hexdigest(), 16) % modulus == 0:
            held_out.append(row)
        else:
            train.append(row)
    return train, held_out, dropped, files


def round_robin_batches(rows, batch_size, rng):
    """Batches in which no question appears twice, as far as the rounds allow: each question's
    queries are shuffled and dealt one per round, the questions in a new random order each round."""
    by_question = {}
    for index, row in enumerate(rows):
        by_question.setdefault(row["question_id"], []).append(index)
    for indices in by_question.values():
        rng.shuffle(indices)
    order = []
    for round_ in range(max(len(v) for v in by_question.values())):
        questions = [q for q, v in sorted(by_question.items()) if round_ < len(v)]
        rng.shuffle(questions)
        order += [by_question[q][round_] for q in questions]
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


# ------------------------------------------------------------------------------------ encoding


def tokenize(tokenizer, texts):
    encodings = tokenizer.encode_batch(list(texts))
    length = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), length), np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)], mask[row, : len(e.ids)] = e.ids, e.attention_mask
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.zeros_like(torch.from_numpy(ids))


def embed_texts(model, tokenizer, texts, batch_size=32):
    """Normalised embeddings [n, hidden], no gradient, in eval mode (batched by length)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros(len(texts), model.cfg["hidden_size"])
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            out[chunk] = model.embed(*tokenize(tokenizer, [texts[i] for i in chunk]))
    model.train(was_training)
    return out


def fused(q, a):
    return torch.maximum(q, (1 - ANSWER_WEIGHT) * q + ANSWER_WEIGHT * a)


def key_point_vectors(embed, corpus):
    """Every question's key-point vectors, zero-padded: ([n, most points, hidden], mask [n, most points])."""
    counts = [len(q["key_points"]) for q in corpus]
    flat = embed([point for q in corpus for point in q["key_points"]])
    vectors = torch.zeros(len(corpus), max(counts), flat.shape[1])
    mask = torch.zeros(len(corpus), max(counts), dtype=torch.bool)
    start = 0
    for i, count in enumerate(counts):
        vectors[i, :count], mask[i, :count] = flat[start : start + count], True
        start += count
    return vectors, mask


def closest_key_point(query_vectors, key_points):
    """[n_queries, n_questions]: each query's cosine to each question's closest key point."""
    vectors, mask = key_points
    cosines = torch.einsum("bd,nkd->bnk", query_vectors, vectors).masked_fill(~mask, float("-inf"))
    return cosines.max(-1).values


def served(q, a, k):
    """The semantic score search serves (src/search.rs `semantic_ranking`)."""
    return fused(q, a) + KEY_POINT_WEIGHT * k


# ---------------------------------------------------------------------------------- evaluation


def torch_embedder(model, tokenizer):
    """texts -> normalised embeddings [n, hidden] of a torch model."""
    return lambda texts: embed_texts(model, tokenizer, texts)


def score_matrix(embed, corpus, queries, cache=None):
    """The served semantic score [n_queries, n_questions] and the (answer, key-point) vectors
    used; `embed` maps texts to a tensor of normalised embeddings (the torch model, or an ONNX
    export)."""
    question_vectors = embed([q["question"] for q in corpus])
    if cache is None:
        cache = (embed([q["answer"] for q in corpus]), key_point_vectors(embed, corpus))
    answer_vectors, key_points = cache
    query_vectors = embed(queries)
    scores = served(query_vectors @ question_vectors.T, query_vectors @ answer_vectors.T, closest_key_point(query_vectors, key_points))
    return scores, cache


def ranking_metrics(scores, ids, relevant):
    """hit@1, hit@3, MRR@10 for one query (as src/eval/search.rs: first relevant in the top 10)."""
    top = [ids[i] for i in torch.argsort(scores, descending=True)[:10].tolist()]
    first = next((p for p, qid in enumerate(top) if qid in relevant), None)
    return {
        "hit@1": float(first == 0),
        "hit@3": float(first is not None and first < 3),
        "mrr@10": 0.0 if first is None else 1.0 / (first + 1),
    }


def mean_metrics(rows):
    if not rows:
        return {"n": 0}
    return {"n": len(rows), **{k: round(sum(r[k] for r in rows) / len(rows), 4) for k in ("hit@1", "hit@3", "mrr@10")}}


def held_out_metrics(model, tokenizer, corpus, held_out, cache=None):
    ids = [q["id"] for q in corpus]
    scores, cache = score_matrix(torch_embedder(model, tokenizer), corpus, [r["query"] for r in held_out], cache)
    rows = [ranking_metrics(scores[i], ids, {r["question_id"]}) for i, r in enumerate(held_out)]
    return mean_metrics(rows), cache


def eval_search(embed, corpus, eval_queries):
    """Per-kind metrics and per-query best scores on eval/queries.toml."""
    ids = [q["id"] for q in corpus]
    scores, _ = score_matrix(embed, corpus, [q["query"] for q in eval_queries])
    per_query = []
    for i, q in enumerate(eval_queries):
        best = float(scores[i].max())
        top = ids[int(scores[i].argmax())]
        row = {"query": q["query"], "kind": q["kind"], "best_score": round(best, 4), "top": top}
        if q["kind"] != "none":
            row.update(ranking_metrics(scores[i], ids, set(q["relevant"])))
        per_query.append(row)
    answerable = [r for r in per_query if r["kind"] != "none"]
    table = {kind: mean_metrics([r for r in answerable if r["kind"] == kind]) for kind in EVAL_KINDS}
    table["overall"] = mean_metrics(answerable)
    return table, per_query


def floor_table(per_query):
    """For relevance floors on the best score: "no match" = best < floor."""
    none = [r["best_score"] for r in per_query if r["kind"] == "none"]
    answerable = [r for r in per_query if r["kind"] != "none"]
    hit3 = sum(r["hit@3"] for r in answerable) / len(answerable)
    rows = []
    # The smallest floor above a NO_MATCH_RECALL_TARGET share of the "none" best scores.
    target = sorted(none)[math.ceil(NO_MATCH_RECALL_TARGET * len(none)) - 1] + 1e-4
    for floor in FLOORS + [round(target, 4)]:
        none_dropped = sum(s < floor for s in none)
        dropped = [r for r in answerable if r["best_score"] < floor]
        flagged = none_dropped + len(dropped)
        kept_hit3 = sum(r["hit@3"] for r in answerable if r["best_score"] >= floor) / len(answerable)
        rows.append(
            {
                "floor": floor,
                "chosen_by": "fixed" if floor in FLOORS else f"no-match recall >= {NO_MATCH_RECALL_TARGET}",
                "no_match_precision": round(none_dropped / flagged, 3) if flagged else None,
                "no_match_recall": round(none_dropped / len(none), 3),
                "answerable_dropped": round(len(dropped) / len(answerable), 3),
                "hit@3_after_floor": round(kept_hit3, 4),
                "hit@3_drop": round(hit3 - kept_hit3, 4),
            }
        )
    return rows


def distribution(values):
    q = np.percentile(values, [0, 10, 25, 50, 75, 90, 100])
    return dict(zip(["min", "p10", "p25", "p50", "p75", "p90", "max"], [round(float(v), 3) for v in q]))


def separation_auc(none, answerable):
    """P(an answerable query's best score > a "none" query's), ties half."""
    wins = sum((a > n) + 0.5 * (a == n) for a in answerable for n in none)
    return wins / (len(none) * len(answerable))


def spearman(x, y):
    def ranks(values):
        values = np.asarray(values, float)
        order = np.argsort(values, kind="mergesort")
        r = np.empty(len(values))
        r[order] = np.arange(len(values))
        for value in np.unique(values):  # average ranks of ties
            tied = values == value
            r[tied] = r[tied].mean()
        return r

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def stsb_spearman(model, tokenizer, data_dir):
    with gzip.open(Path(data_dir) / "stsb_test.jsonl.gz", "rt") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    left = embed_texts(model, tokenizer, [r["premise"] for r in rows])
    right = embed_texts(model, tokenizer, [r["hypothesis"] for r in rows])
    return round(spearman((left * right).sum(1).numpy(), [r["score"] for r in rows]), 4), len(rows)


# ------------------------------------------------------------------------------------ training


def batch_loss(model, tokenizer, corpus_by_id, rows, cache, positives, temperature):
    qids = [r["question_id"] for r in rows]
    queries = model.embed(*tokenize(tokenizer, [r["query"] for r in rows]))
    same = torch.tensor([[a == b for b in qids] for a in qids])
    false_negatives = same & ~torch.eye(len(rows), dtype=torch.bool)
    target = torch.arange(len(rows))

    def mnrl(cosines):
        logits = (cosines / temperature).masked_fill(false_negatives, float("-inf"))
        return F.cross_entropy(logits, target)

    q = queries @ model.embed(*tokenize(tokenizer, [corpus_by_id[i]["question"] for i in qids])).T
    if positives == "question":
        return mnrl(q)
    indices = [corpus_by_id[i]["index"] for i in qids]
    answers, (points, mask) = cache
    a = queries @ answers[indices].T
    if positives == "both":
        return mnrl(q) + mnrl(a)
    if positives == "fused":
        return mnrl(fused(q, a))
    return mnrl(served(q, a, closest_key_point(queries, (points[indices], mask[indices]))))


def train_setting(base_weights, cfg, tokenizer, corpus, train, held_out, setting, args, base_cache):
    """Train one setting; returns (best weights, its epoch, held-out curve, minutes)."""
    seed = args.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    rng = random.Random(seed)
    corpus_by_id = {q["id"]: {**q, "index": i} for i, q in enumerate(corpus)}
    model = MiniLM(cfg, base_weights)
    # As in the judge: the word embeddings (half the parameters) stay as pre-trained.
    model.p("embeddings.word_embeddings.weight").requires_grad_(False)
    trainable = [p for name, p in model.params.items() if p.requires_grad and not name.startswith(("pooler", "embeddings__position_ids"))]
    optimizer = torch.optim.AdamW(trainable, lr=setting["lr"], weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = max(1, int(total * args.warmup))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
    )
    started = time.time()
    cache = base_cache
    curve, best = [], None
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = []
        for batch in round_robin_batches(train, args.batch_size, rng):
            loss = batch_loss(model, tokenizer, corpus_by_id, [train[i] for i in batch], cache, setting["positives"], args.temperature)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            step += 1
        metrics, cache = held_out_metrics(model, tokenizer, corpus, held_out)
        curve.append({"epoch": epoch, "train_loss": round(sum(losses) / len(losses), 4), **metrics})
        print(
            f"  [{setting['name']}] epoch {epoch}: loss {curve[-1]['train_loss']:.3f}  held-out hit@1 {metrics['hit@1']:.3f} "
            f"hit@3 {metrics['hit@3']:.3f} MRR@10 {metrics['mrr@10']:.3f}  ({(time.time() - started) / 60:.1f} min)",
            flush=True,
        )
        key = (metrics["mrr@10"], metrics["hit@1"])
        if best is None or key > best[0]:
            best = (key, epoch, copy.deepcopy(model.encoder_weights()))
    return best[2], best[1], curve, (time.time() - started) / 60


# -------------------------------------------------------------------------------------- export


def export_onnx(model, cfg, tokenizer, path):
    """model.onnx from the tuned weights; its pooled, normalised output against torch's."""
    import onnx
    import onnxruntime

    from export_minilm_onnx import build_model

    weights = {name: tensor.numpy() for name, tensor in model.encoder_weights().items()}
    graph = build_model(weights, cfg)
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    corpus = load_corpus()
    sentences = CHECK_SENTENCES + [corpus[0]["answer"], corpus[-1]["answer"], corpus[50]["question"], corpus[100]["answer"], corpus[150]["question"], corpus[80]["answer"]]
    sentences = sentences[:20]
    ids, mask, types = tokenize(tokenizer, sentences)  # one padded batch: checks the masking too
    hidden = session.run(["last_hidden_state"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()})[0]
    m = mask.numpy()[..., None].astype(np.float32)
    pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    reference = embed_texts(model, tokenizer, sentences).numpy()
    cosines = (pooled * reference).sum(1)
    return {"sentences": len(sentences), "min_cosine": float(cosines.min()), "max_abs_difference": float(np.abs(pooled - reference).max())}


# ---------------------------------------------------------------------------------------- main


def print_table(title, base, tuned):
    print(f"\n{title}")
    print(f"  {'kind':11} {'n':>4}   {'hit@1 base':>10} {'tuned':>6}   {'hit@3 base':>10} {'tuned':>6}   {'MRR@10 base':>11} {'tuned':>6}")
    for kind in EVAL_KINDS + ["overall"]:
        b, t = base[kind], tuned[kind]
        print(
            f"  {kind:11} {b['n']:>4}   {b['hit@1']:>10.3f} {t['hit@1']:>6.3f}   {b['hit@3']:>10.3f} {t['hit@3']:>6.3f}   "
            f"{b['mrr@10']:>11.3f} {t['mrr@10']:>6.3f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=str(ROOT / "models/.source/all-MiniLM-L6-v2"), help="base checkpoint directory")
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/nli"), help="directory of stsb_test.jsonl.gz")
    parser.add_argument("--out", default="/tmp/search-model")
    parser.add_argument("--positives", nargs="+", default=["question", "both"], choices=["question", "both", "fused", "fused-kp"])
    parser.add_argument("--lr", nargs="+", type=float, default=[3e-5])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per setting; the best by held-out MRR@10 is kept")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--warmup", type=float, default=0.1, help="share of the steps with a linear warm-up")
    parser.add_argument("--hold-out-modulus", type=int, default=6)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit-train", type=int, default=0, help="train on at most this many queries (0: all; for a quick check)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    started = time.time()
    base_dir, out = Path(args.base), Path(args.out)
    cfg = json.loads((base_dir / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(base_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    base_weights = load_file(str(base_dir / "model.safetensors"))

    corpus = load_corpus()
    eval_queries = load_eval()
    train, held_out, dropped, files = training_queries(eval_queries, args.hold_out_modulus)
    if args.limit_train:
        train = random.Random(args.seed).sample(train, min(args.limit_train, len(train)))
    print(
        f"corpus {len(corpus)} questions; training queries: {len(train)} train, {len(held_out)} held out, "
        f"{len(dropped)} dropped as repeats of eval queries"
    )
    for row in dropped:
        print(f"  dropped: {row['query']!r}")

    base_model = MiniLM(cfg, base_weights)
    base_held_out, base_cache = held_out_metrics(base_model, tokenizer, corpus, held_out)
    print(f"base held-out: hit@1 {base_held_out['hit@1']:.3f} hit@3 {base_held_out['hit@3']:.3f} MRR@10 {base_held_out['mrr@10']:.3f}", flush=True)

    settings = [{"name": f"{p}-lr{lr:g}", "positives": p, "lr": lr} for p in args.positives for lr in args.lr]
    results, best_key = [], None
    for setting in settings:
        weights, epoch, curve, minutes = train_setting(base_weights, cfg, tokenizer, corpus, train, held_out, setting, args, base_cache)
        best = curve[epoch - 1]
        results.append({**setting, "best_epoch": epoch, "held_out": {k: best[k] for k in ("hit@1", "hit@3", "mrr@10")}, "curve": curve, "minutes": round(minutes, 1)})
        print(f"  [{setting['name']}] best epoch {epoch}, {minutes:.1f} min", flush=True)
        if best_key is None or (best["mrr@10"], best["hit@1"]) > best_key:
            best_weights, best_key, chosen = weights, (best["mrr@10"], best["hit@1"]), results[-1]
        del weights
    print(f"chosen by held-out training queries: {chosen['name']}, epoch {chosen['best_epoch']}")

    tuned = MiniLM(cfg, best_weights)
    print("evaluating base and tuned on eval/queries.toml (never trained on) ...", flush=True)
    base_table, base_queries = eval_search(torch_embedder(base_model, tokenizer), corpus, eval_queries)
    tuned_table, tuned_queries = eval_search(torch_embedder(tuned, tokenizer), corpus, eval_queries)
    print_table("pure semantic search, eval/queries.toml (kind none excluded)", base_table, tuned_table)

    floors, separation = {}, {}
    for name, per_query in [("base", base_queries), ("tuned", tuned_queries)]:
        none = [r["best_score"] for r in per_query if r["kind"] == "none"]
        answerable = [r["best_score"] for r in per_query if r["kind"] != "none"]
        separation[name] = {
            "none_best_score": distribution(none),
            "answerable_best_score": distribution(answerable),
            "auc_answerable_above_none": round(separation_auc(none, answerable), 4),
        }
        floors[name] = floor_table(per_query)
        s = separation[name]
        print(f"\n{name}: best score, none queries (n={len(none)}) {s['none_best_score']}")
        print(f"{name}: best score, answerable (n={len(answerable)})  {s['answerable_best_score']}")
        print(f"{name}: AUC (answerable above none) {s['auc_answerable_above_none']:.3f}")
        print(f"  {'floor':>6}  {'no-match precision':>18}  {'recall':>6}  {'answerable dropped':>18}  {'hit@3 after':>11}  {'drop':>6}")
        for row in floors[name]:
            precision = "-" if row["no_match_precision"] is None else f"{row['no_match_precision']:.3f}"
            print(
                f"  {row['floor']:>6.3f}  {precision:>18}  {row['no_match_recall']:>6.3f}  {row['answerable_dropped']:>18.3f}  "
                f"{row['hit@3_after_floor']:>11.3f}  {row['hit@3_drop']:>6.3f}"
                + ("" if row["chosen_by"] == "fixed" else f"  <- {row['chosen_by']}")
            )

    stsb_base, n_stsb = stsb_spearman(base_model, tokenizer, args.data)
    stsb_tuned, _ = stsb_spearman(tuned, tokenizer, args.data)
    print(f"\nSTS-B test (n={n_stsb}) Spearman: base {stsb_base:.4f}, tuned {stsb_tuned:.4f}")

    out.mkdir(parents=True, exist_ok=True)
    # Tensors that are not floating point in the base (position_ids) go back to their dtype.
    saved = {name: tensor.to(base_weights[name].dtype).contiguous() for name, tensor in tuned.encoder_weights().items()}
    save_file(saved, str(out / "model.safetensors"), metadata={"format": "pt"})
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(base_dir / name, out / name)
    check = export_onnx(tuned, cfg, tokenizer, out / "model.onnx")
    print(f"ONNX check: {check}")
    if check["min_cosine"] <= 0.9999:
        raise SystemExit("model.onnx disagrees with the torch model")

    report = {
        "model": "all-MiniLM-L6-v2 fine-tuned for askmark search (multiple-negatives ranking loss on train/queries)",
        "command": " ".join(sys.argv),
        "hyper_parameters": {k: v for k, v in vars(args).items() if k not in ("base", "data", "out")},
        "max_length": MAX_LENGTH,
        "answer_weight": ANSWER_WEIGHT,
        "base_weights_sha256": sha256_file(base_dir / "model.safetensors"),
        "model_safetensors_sha256": sha256_file(out / "model.safetensors"),
        "model_onnx_sha256": sha256_file(out / "model.onnx"),
        "training_data_sha256": files,
        "training_queries": {"train": len(train), "held_out": len(held_out), "dropped_as_eval_repeats": [r["query"] for r in dropped]},
        "base_held_out": base_held_out,
        "settings": results,
        "chosen": {"name": chosen["name"], "epoch": chosen["best_epoch"]},
        "eval": {"base": base_table, "tuned": tuned_table},
        "no_match": {"separation": separation, "floors": floors},
        "stsb_test_spearman": {"n": n_stsb, "base": stsb_base, "tuned": stsb_tuned},
        "onnx_check": check,
        "per_query": {"base": base_queries, "tuned": tuned_queries},
        "minutes": round((time.time() - started) / 60, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}/model.safetensors, model.onnx, config.json, tokenizer.json, report.json ({report['minutes']} min in all)")


if __name__ == "__main__":
    main()
