#!/usr/bin/env python3
"""Int8 variants of the MiniLM export (ONNX Runtime dynamic quantisation) measured against fp32.

For every variant: drift (cosine to the fp32 embedding of the eval queries, of the corpus's
reference answers and key points, and of the sentences of eval/answers.toml that review
embeds), agreement of the nearest corpus questions, semantic-search metrics on
eval/queries.toml, and single-thread latency measured interleaved with fp32. Prints markdown.

A variant is named by dash-separated tokens, e.g. `s8-mm-pc` or `opt-u8-def-rr-x0`:

    s8 | u8          weight_type QInt8 | QUInt8 (activations are always uint8 in dynamic mode)
    mm | mmg | def   op_types_to_quantize ["MatMul"] | ["MatMul", "Gather"] | None (the default)
    pc               per_channel=True
    rr               reduce_range=True
    opt              run onnxruntime.transformers.optimizer (model_type "bert") first
    pre              run onnxruntime.quantization.quant_pre_process first
    x<N>             nodes_to_exclude: the MatMuls of encoder layer N
    xffn             nodes_to_exclude: every layer's feed-forward output MatMul
    xattn            nodes_to_exclude: every layer's attention-output MatMul

Example:
    models/.train-venv/bin/python scripts/quantize_study.py --work /tmp/int8-study \\
        --variants s8-mm s8-mm-pc u8-mm-pc --runs 60 --save s8-mm-pc=/tmp/int8-study/model.int8.onnx
"""

import argparse
import glob
import hashlib
import json
import logging
import random
import re
import shutil
import statistics
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from tokenizers import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
MAX_LENGTH = 256
BATCH = 1  # texts per model call (src/embed.rs: one, so that no text moves another's int8 embedding)
CANDIDATE_DEPTH = 100  # vector hits per search (src/search.rs)
ANSWER_WEIGHT = 0.75  # FusionParams::default().answer_weight
COVERAGE_CUTS = (0.58, 0.7)  # bi-encoder partially covered / covered (src/review.rs)
LAYERS = 6

DEFAULT_VARIANTS = [
    *(f"{w}-{ops}{pc}" for w in ("s8", "u8") for ops in ("mm", "mmg", "def") for pc in ("", "-pc")),
    "s8-mm-rr", "s8-mm-pc-rr", "u8-mm-pc-rr",
    "opt-s8-mm-pc", "opt-u8-mm-pc",
]


# --------------------------------------------------------------------------- variants


@dataclass
class Variant:
    name: str
    weight_type: str = "QInt8"
    ops: list | None = None
    per_channel: bool = False
    reduce_range: bool = False
    optimize: bool = False
    preprocess: bool = False
    exclude: list = field(default_factory=list)  # regexes over node names

    @classmethod
    def parse(cls, name):
        v = cls(name)
        for token in name.split("-"):
            if token in ("s8", "u8"):
                v.weight_type = "QInt8" if token == "s8" else "QUInt8"
            elif token in ("mm", "mmg", "def"):
                v.ops = {"mm": ["MatMul"], "mmg": ["MatMul", "Gather"], "def": None}[token]
            elif token == "pc":
                v.per_channel = True
            elif token == "rr":
                v.reduce_range = True
            elif token == "opt":
                v.optimize = True
            elif token == "pre":
                v.preprocess = True
            elif re.fullmatch(r"x\d", token):
                v.exclude.append(rf"^encoder\.layer\.{token[1:]}\.")
            elif token == "xffn":
                v.exclude.append(r"^encoder\.layer\.\d+\.output\.dense/MatMul")
            elif token == "xattn":
                v.exclude.append(r"^encoder\.layer\.\d+\.attention\.output\.dense/MatMul")
            else:
                raise SystemExit(f"variant {name!r}: unknown token {token!r}")
        return v

    def steps(self, model_nodes):
        """The exact calls that make this variant (for the report)."""
        lines = []
        if self.preprocess:
            lines.append("quant_pre_process(fp32, pre, skip_symbolic_shape=True)")
        if self.optimize:
            lines.append('optimizer.optimize_model(fp32, model_type="bert", num_heads=12, hidden_size=384, opt_level=0)')
        args = [f"weight_type=QuantType.{self.weight_type}", f"op_types_to_quantize={self.ops!r}",
                f"per_channel={self.per_channel}", f"reduce_range={self.reduce_range}"]
        if self.exclude:
            args.append(f"nodes_to_exclude={self.excluded(model_nodes)!r}")
        if self.optimize:
            args.append('extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}')
        lines.append(f"quantize_dynamic(src, out, {', '.join(args)})")
        return lines

    def excluded(self, model_nodes):
        return [n for n in model_nodes if any(re.search(p, n) for p in self.exclude)]

    def build(self, fp32, out):
        from onnxruntime.quantization import QuantType, quantize_dynamic

        work = out.parent / f".{self.name}"
        work.mkdir(parents=True, exist_ok=True)
        source = fp32
        if self.preprocess:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(source), str(work / "pre.onnx"), skip_symbolic_shape=True)  # symbolic inference fails on this graph
            source = work / "pre.onnx"
        if self.optimize:
            from onnxruntime.transformers import optimizer

            model = optimizer.optimize_model(str(source), model_type="bert", num_heads=12, hidden_size=384, opt_level=0)
            model.save_model_to_file(str(work / "opt.onnx"))
            source = work / "opt.onnx"
        nodes = [n.name for n in onnx.load(str(source), load_external_data=False).graph.node]
        quantize_dynamic(
            str(source), str(out),
            weight_type=getattr(QuantType, self.weight_type),
            op_types_to_quantize=self.ops,
            per_channel=self.per_channel,
            reduce_range=self.reduce_range,
            nodes_to_exclude=self.excluded(nodes) or None,
            # onnx shape inference cannot type the outputs of contrib ops (SkipLayerNormalization)
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT} if self.optimize else None,
        )
        shutil.rmtree(work)
        out.with_suffix(".recipe").write_text("\n".join(self.steps(nodes)) + "\n")


# --------------------------------------------------------------------------- embedding


class Embedder:
    def __init__(self, path, tokenizer, threads):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer

    def run(self, encoded):
        ids, mask = encoded
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed(self, texts):
        """Like src/embed.rs: shortest first, BATCH at a time, padded to the longest of the batch."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i].encode()))
        out = np.zeros((len(texts), 384), np.float32)
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            out[chunk] = self.run(encode(self.tokenizer, [texts[i] for i in chunk]))
        return out


def load_tokenizer(path):
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(MAX_LENGTH)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
    return tok


def encode(tokenizer, texts):
    enc = tokenizer.encode_batch(texts)
    return (np.array([e.ids for e in enc], np.int64), np.array([e.attention_mask for e in enc], np.int64))


# --------------------------------------------------------------------------- data


def sentences(text):
    """Rough stand-in for text::sentences (UAX #29 sentences, then lines)."""
    parts = (s.strip() for chunk in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])", text) for s in chunk.split("\n"))
    return [p for p in parts if any(c.isalnum() for c in p)]


def load_data(root):
    questions = []
    for path in sorted(glob.glob(str(root / "corpus" / "*.toml"))):
        questions += tomllib.loads(Path(path).read_text()).get("questions", [])
    queries = tomllib.loads((root / "eval" / "queries.toml").read_text())["queries"]
    answers = tomllib.loads((root / "eval" / "answers.toml").read_text())["answers"]
    return questions, queries, answers


@dataclass
class Vectors:
    queries: np.ndarray
    question: np.ndarray  # one per corpus question
    answer: np.ndarray  # main reference answer per corpus question
    key_points: np.ndarray  # all key points, corpus order
    passages: list  # per labelled answer: [n_sentences, 384]


def embed_everything(emb, questions, queries, answers):
    qv = np.stack([emb.embed([q["query"]])[0] for q in queries])  # a search embeds one query alone
    question, answer, kps = [], [], []
    for q in questions:  # as index::embed_question: one call per corpus question
        texts = [q["question"], q["answer"], *q.get("alternatives", []), *q.get("key_points", []), *q.get("misconceptions", [])]
        v = emb.embed(texts)
        n_refs = 1 + len(q.get("alternatives", []))
        question.append(v[0])
        answer.append(v[1])
        kps.append(v[1 + n_refs:1 + n_refs + len(q.get("key_points", []))])
    passages = [emb.embed(sentences(a["answer"])) for a in answers]
    return Vectors(qv, np.stack(question), np.stack(answer), np.concatenate(kps), passages)


def cached_vectors(work, name, path, tokenizer, threads, questions, queries, answers):
    """embed_everything, kept in WORK/vectors/ under the model's and the data's checksums."""
    digest = hashlib.sha256(Path(path).read_bytes())
    for f in ("eval/queries.toml", "eval/answers.toml", *sorted(glob.glob("corpus/*.toml", root_dir=ROOT))):
        digest.update((ROOT / f).read_bytes())
    cache = work / "vectors" / f"{name}-{digest.hexdigest()[:16]}.npz"
    if cache.exists():
        z = np.load(cache)
        n = [len(sentences(a["answer"])) for a in answers]
        return Vectors(z["queries"], z["question"], z["answer"], z["key_points"], np.split(z["passages"], np.cumsum(n)[:-1]))
    t = time.perf_counter()
    v = embed_everything(Embedder(path, tokenizer, threads), questions, queries, answers)
    print(f"embedded with {name} in {time.perf_counter() - t:.1f}s", flush=True)
    cache.parent.mkdir(exist_ok=True)
    np.savez(cache, queries=v.queries, question=v.question, answer=v.answer, key_points=v.key_points,
             passages=np.concatenate(v.passages))
    return v


# --------------------------------------------------------------------------- metrics


def row_cos(a, b):
    return np.sum(a * b, axis=1)  # both unit length


def top_k(query_vectors, targets, k):
    scores = query_vectors @ targets.T
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(scores, idx, axis=1)


def semantic_rankings(v, ids):
    """search::semantic_ranking over the top CANDIDATE_DEPTH question and answer hits."""
    qi, qs = top_k(v.queries, v.question, CANDIDATE_DEPTH)
    ai, as_ = top_k(v.queries, v.answer, CANDIDATE_DEPTH)
    rankings = []
    for r in range(len(v.queries)):
        best = {ids[i]: s for i, s in zip(qi[r], qs[r])}
        for i, s in zip(ai[r], as_[r]):
            blended = (1 - ANSWER_WEIGHT) * best.get(ids[i], 0.0) + ANSWER_WEIGHT * s
            best[ids[i]] = max(best.get(ids[i], -np.inf), blended)
        rankings.append([i for i, _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))])
    return rankings


def search_metrics(rankings, queries):
    hit1 = mrr = 0.0
    for ranking, q in zip(rankings, queries):
        first = next((p for p, i in enumerate(ranking[:10]) if i in q["relevant"]), None)
        hit1 += first == 0
        mrr += 0.0 if first is None else 1.0 / (first + 1)
    return hit1 / len(queries), mrr / len(queries)


def closest_key_point_cosines(v, questions, answers):
    """For each labelled answer and key point of its question: the closest passage's cosine."""
    offsets, start = {}, 0
    for q in questions:
        offsets[q["id"]] = (start, start + len(q.get("key_points", [])))
        start += len(q.get("key_points", []))
    out = []
    for a, p in zip(answers, v.passages):
        lo, hi = offsets[a["question_id"]]
        out.append((v.key_points[lo:hi] @ p.T).max(axis=1) if len(p) else np.zeros(hi - lo))
    return out


def spearman(x, y):
    rx, ry = (np.argsort(np.argsort(a)).astype(float) for a in (x, y))  # no ties in x; grades tie, fine for a proxy
    return float(np.corrcoef(rx, ry)[0, 1])


def quality(ref, v, questions, queries, answers, ids):
    q_cos = row_cos(ref.queries, v.queries)
    r_cos = np.concatenate([row_cos(ref.answer, v.answer), row_cos(ref.key_points, v.key_points)])
    p_cos = np.concatenate([row_cos(a, b) for a, b in zip(ref.passages, v.passages) if len(a)])
    ref_top, _ = top_k(ref.queries, ref.question, 10)
    top, _ = top_k(v.queries, v.question, 10)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ref_top, top)])
    top1 = np.mean(ref_top[:, 0] == top[:, 0])
    hit1, mrr = search_metrics(semantic_rankings(v, ids), queries)
    q_hit1, q_mrr = search_metrics([[ids[i] for i in row] for row in top], queries)
    ref_kp = np.concatenate(closest_key_point_cosines(ref, questions, answers))
    kp = closest_key_point_cosines(v, questions, answers)
    flips = np.mean(np.digitize(ref_kp, COVERAGE_CUTS) != np.digitize(np.concatenate(kp), COVERAGE_CUTS))
    grade_rho = spearman([float(np.mean(k)) for k in kp], [a["grade"] for a in answers])
    return {
        "query": stats(q_cos), "refs": stats(r_cos), "passages": stats(p_cos),
        "overlap@10": overlap, "top1": top1, "hit@1": hit1, "mrr@10": mrr, "q-hit@1": q_hit1, "q-mrr@10": q_mrr,
        "kp |Δ|": float(np.mean(np.abs(ref_kp - np.concatenate(kp)))), "kp flips": flips, "ρ(grade)": grade_rho,
    }


def stats(c):
    return float(np.mean(c)), float(np.percentile(c, 5)), float(np.min(c))


# --------------------------------------------------------------------------- speed


def speed(paths, tokenizer, query, answer, runs):
    """Median ms per case, every variant in every round, in a fresh random order each round."""
    sessions = {name: Embedder(p, tokenizer, threads=1) for name, p in paths.items()}
    cases = {
        "query": [encode(tokenizer, [query])],
        "answer": [encode(tokenizer, [answer])],
        "sentences": [encode(tokenizer, chunk) for chunk in batched(sorted(sentences(answer), key=len), BATCH)],
    }
    times = {(n, c): [] for n in sessions for c in cases}
    for r in range(runs + 5):
        order = list(sessions)
        random.shuffle(order)
        for name in order:
            for case, batches in cases.items():
                t = time.perf_counter()
                for b in batches:
                    sessions[name].run(b)
                if r >= 5:  # warm-up
                    times[name, case].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}, times


def batched(items, n):
    return [items[i:i + n] for i in range(0, len(items), n)]


def ratio_median(times, name, case):
    return statistics.median(a / b for a, b in zip(times[name, case], times["fp32", case]))


# --------------------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "models" / "all-MiniLM-L6-v2")
    parser.add_argument("--work", type=Path, default=Path("/tmp/int8-study"), help="where variants are written")
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    parser.add_argument("--runs", type=int, default=60, help="timed rounds per variant (after 5 warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for the quality pass")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--times-json", type=Path, help="write every timed run (ms) here")
    parser.add_argument("--rebuild", action="store_true", help="quantise again even if the file exists")
    parser.add_argument("--save", action="append", default=[], metavar="VARIANT=PATH", help="copy a variant to PATH")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    ort.set_default_logger_severity(3)

    fp32 = args.model_dir / "model.onnx"
    tokenizer = load_tokenizer(args.model_dir / "tokenizer.json")
    questions, queries, answers = load_data(ROOT)
    ids = [q["id"] for q in questions]
    args.work.mkdir(parents=True, exist_ok=True)

    variants = [Variant.parse(n) for n in dict.fromkeys(args.variants)]
    paths, recipes = {"fp32": fp32}, {}
    for v in variants:
        out = args.work / f"{v.name}.onnx"
        if args.rebuild or not out.exists():
            t = time.perf_counter()
            v.build(fp32, out)
            print(f"built {out.name} in {time.perf_counter() - t:.1f}s", flush=True)
        recipes[v.name] = out.with_suffix(".recipe").read_text().splitlines()
        paths[v.name] = out

    # The pipeline must reproduce setup-model's reference embeddings with the fp32 model.
    reference = json.loads((args.model_dir.parent / "reference" / "embeddings.json").read_text())["items"]
    got = Embedder(fp32, tokenizer, args.threads).embed([i["text"] for i in reference])
    agreement = row_cos(got, np.array([i["embedding"] for i in reference], np.float32)).min()
    print(f"fp32 vs models/reference/embeddings.json: min cosine {agreement:.6f}", flush=True)
    assert agreement > 0.9999, "this script does not embed like setup-model's reference"

    vectors = {name: cached_vectors(args.work, name, path, tokenizer, args.threads, questions, queries, answers)
               for name, path in paths.items()}
    results = {name: quality(vectors["fp32"], v, questions, queries, answers, ids) for name, v in vectors.items()}

    if not args.no_speed:
        query = "how do I read a large file line by line"  # 9 words
        answer = min((q["answer"] for q in questions), key=lambda a: abs(len(a.split()) - 200))
        print(f"timing {len(paths)} models x {args.runs} rounds (answer: {len(answer.split())} words, "
              f"{len(tokenizer.encode(answer).ids)} tokens, {len(sentences(answer))} sentences)", flush=True)
        medians, times = speed(paths, tokenizer, query, answer, args.runs)
        if args.times_json:
            args.times_json.write_text(json.dumps({f"{n} {c}": t for (n, c), t in times.items()}))

    print()
    head = ["variant", "MB", "query cos mean/p5/min", "answer+kp cos mean/p5/min", "review sentences cos mean/p5/min",
            "overlap@10", "top-1 =", "sem hit@1", "sem MRR@10", "q-only hit@1", "q-only MRR@10", "kp |Δ|", "kp flips", "ρ(grade)"]
    if not args.no_speed:
        head += ["query ms", "answer ms", "sentences ms", "× fp32 query/answer/sentences"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, r in results.items():
        cells = [name, f"{paths[name].stat().st_size / 1e6:.1f}"]
        cells += ["/".join(f"{x:.4f}" for x in r[k]) for k in ("query", "refs", "passages")]
        cells += [f"{r['overlap@10']:.3f}", f"{r['top1']:.3f}", f"{r['hit@1']:.3f}", f"{r['mrr@10']:.3f}",
                  f"{r['q-hit@1']:.3f}", f"{r['q-mrr@10']:.3f}", f"{r['kp |Δ|']:.4f}", f"{r['kp flips']:.3f}", f"{r['ρ(grade)']:.3f}"]
        if not args.no_speed:
            cells += [f"{medians[name, c]:.2f}" for c in ("query", "answer", "sentences")]
            cells += ["/".join(f"{ratio_median(times, name, c):.2f}" for c in ("query", "answer", "sentences"))]
        print("| " + " | ".join(cells) + " |")

    print()
    for name, steps in recipes.items():
        print(f"- `{name}`: " + "; ".join(f"`{s}`" for s in steps))
    for spec in args.save:
        name, dest = spec.split("=", 1)
        shutil.copyfile(paths[name], dest)
        print(f"saved {name} to {dest}")


if __name__ == "__main__":
    main()
