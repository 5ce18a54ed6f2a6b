#!/usr/bin/env python3
"""Independent numpy implementation of sentence-transformers/all-MiniLM-L6-v2, and the checks built on it.

The forward pass here is written directly from the BERT architecture, in float64, from the
same safetensors weights that scripts/export_minilm_onnx.py turns into model.onnx. It
tokenises with the `tokenizers` package from tokenizer.json, truncates at --max-length
tokens, mean-pools over the attention mask and L2-normalises, like sentence-transformers.

Commands (all run by scripts/setup-model):
    check-onnx   run model.onnx through onnx.reference.ReferenceEvaluator on a padded batch and
                 compare its pooled embeddings with this implementation (cosine >= 0.99999)
    sanity       check similarities published by sentence-transformers, and that a paraphrase
                 scores far higher than an unrelated question
    reference    write the reference embeddings the Rust tests compare fastembed against
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
ONNX_MIN_COSINE = 0.99999

SANITY_QUERY = "How does asyncio differ from threads?"
SANITY_RELATED = "Explain asynchronous programming vs multithreading"
SANITY_UNRELATED = "How do you read a CSV file?"
SANITY_MIN_RELATED = 0.5
SANITY_MIN_MARGIN = 0.3

# The similarities printed (to 4 decimals) by the usage example in the sentence-transformers
# documentation for this model: a check of this implementation against the original.
PUBLISHED_SENTENCES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
PUBLISHED_SIMILARITIES = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}
PUBLISHED_TOLERANCE = 0.00051

_erf = np.vectorize(math.erf, otypes=[np.float64])  # numpy has no erf; GELU needs the exact one


class MiniLM:
    """The BERT encoder, its tokenizer and sentence-transformers' pooling, in float64."""

    def __init__(self, source_dir, max_length):
        source = Path(source_dir)
        self.w = {k: v.astype(np.float64) for k, v in load_file(source / "model.safetensors").items()}
        cfg = json.loads((source / "config.json").read_text())
        self.layers = cfg["num_hidden_layers"]
        self.heads = cfg["num_attention_heads"]
        self.eps = cfg["layer_norm_eps"]
        self.max_length = max_length
        self.tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        # tokenizer.json ships with truncation at 128 and fixed padding to 128: replace both.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_length)

    def tokenize(self, texts):
        """Token ids, attention mask and token types, right-padded with [PAD] (id 0) to the longest text."""
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids, mask, types = (np.zeros((len(texts), width), np.int64) for _ in range(3))
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n], mask[row, :n], types[row, :n] = e.ids, e.attention_mask, e.type_ids
        return ids, mask, types

    def _linear(self, x, name):
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _layer_norm(self, x, name):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _attention(self, x, mask, name):
        batch, seq, hidden = x.shape
        head_dim = hidden // self.heads

        def split(t):  # [batch, seq, hidden] -> [batch, heads, seq, head_dim]
            return t.reshape(batch, seq, self.heads, head_dim).transpose(0, 2, 1, 3)

        q, k, v = (split(self._linear(x, f"{name}.self.{part}")) for part in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        scores = np.where(mask[:, None, None, :] == 1, scores, -np.inf)  # padding gets no weight
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
        return self._linear(context, f"{name}.output.dense")

    def forward(self, ids, mask, types):
        """last_hidden_state [batch, seq, hidden] for token ids, attention mask and token types."""
        e = "embeddings"
        x = (
            self.w[f"{e}.word_embeddings.weight"][ids]
            + self.w[f"{e}.position_embeddings.weight"][: ids.shape[1]]
            + self.w[f"{e}.token_type_embeddings.weight"][types]
        )
        x = self._layer_norm(x, f"{e}.LayerNorm")
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            x = self._layer_norm(x + self._attention(x, mask, f"{p}.attention"), f"{p}.attention.output.LayerNorm")
            h = self._linear(x, f"{p}.intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
            x = self._layer_norm(x + self._linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x

    def embed(self, texts):
        """Normalised sentence embeddings [len(texts), hidden], one text per forward pass (no padding)."""
        rows = []
        for text in texts:
            ids, mask, types = self.tokenize([text])
            rows.append(pool(self.forward(ids, mask, types), mask)[0])
        return np.stack(rows)


def pool(hidden, mask):
    """Mean over the tokens the attention mask keeps, then L2 normalisation."""
    m = mask[:, :, None].astype(np.float64)
    mean = (hidden.astype(np.float64) * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def read_sentences(path):
    """One text per line; blank lines are skipped."""
    return [line for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def check_onnx(model, onnx_path, texts):
    from onnx.reference import ReferenceEvaluator

    session = ReferenceEvaluator(str(onnx_path))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    if session.input_names != names or session.output_names != ["last_hidden_state"]:
        sys.exit(f"unexpected graph interface: {session.input_names} -> {session.output_names}")

    ids, mask, types = model.tokenize(texts)
    (hidden,) = session.run(None, dict(zip(names, (ids, mask, types))))
    expected_shape = ids.shape + (model.w["embeddings.LayerNorm.weight"].shape[0],)
    if hidden.dtype != np.float32 or hidden.shape != expected_shape:
        sys.exit(f"last_hidden_state is {hidden.dtype} {hidden.shape}, expected float32 {expected_shape}")

    # This implementation runs each text on its own, unpadded; the graph gets the padded batch.
    max_abs, expected = 0.0, []
    for row, n in enumerate(mask.sum(axis=1)):
        own = model.forward(ids[row : row + 1, :n], mask[row : row + 1, :n], types[row : row + 1, :n])
        max_abs = max(max_abs, float(np.abs(hidden[row, :n] - own[0]).max()))
        expected.append(pool(own, mask[row : row + 1, :n])[0])
    cosines = (pool(hidden, mask) * np.stack(expected)).sum(axis=1)
    print(f"onnx vs numpy: batch {ids.shape}, max |last_hidden_state diff| over real tokens {max_abs:.2e}")
    for text, tokens, cosine in zip(texts, mask.sum(axis=1), cosines):
        print(f"  cosine {cosine:.12f} (1 - cosine = {1 - cosine:.1e})  {tokens:3d} tokens  {text[:50]!r}")
    if cosines.min() < ONNX_MIN_COSINE:
        sys.exit(f"model.onnx disagrees with the numpy implementation: min cosine {cosines.min():.12f}")


def sanity(model):
    published = model.embed(PUBLISHED_SENTENCES)
    print("published similarities (sentence-transformers docs) vs this implementation:")
    for (a, b), expected in PUBLISHED_SIMILARITIES.items():
        score = float(published[a] @ published[b])
        print(f"  {expected:.4f} vs {score:.6f}  {PUBLISHED_SENTENCES[a]!r} / {PUBLISHED_SENTENCES[b]!r}")
        if abs(score - expected) > PUBLISHED_TOLERANCE:
            sys.exit(f"similarity {score:.6f} differs from the published {expected:.4f}")

    query, related, unrelated = model.embed([SANITY_QUERY, SANITY_RELATED, SANITY_UNRELATED])
    related_score, unrelated_score = float(query @ related), float(query @ unrelated)
    print(f"sanity: {SANITY_QUERY!r}")
    print(f"  {related_score:.4f}  {SANITY_RELATED!r}")
    print(f"  {unrelated_score:.4f}  {SANITY_UNRELATED!r}")
    if related_score < SANITY_MIN_RELATED or related_score - unrelated_score < SANITY_MIN_MARGIN:
        sys.exit(
            f"semantic sanity check failed: related {related_score:.4f} (needs >= {SANITY_MIN_RELATED}), "
            f"margin {related_score - unrelated_score:.4f} (needs >= {SANITY_MIN_MARGIN})"
        )


def write_reference(model, texts, out):
    embeddings = model.embed(texts)
    items = [{"text": t, "embedding": [round(float(v), 9) for v in e]} for t, e in zip(texts, embeddings)]
    document = {"model": MODEL_ID, "max_length": model.max_length, "items": items}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(document, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(items)} embeddings of dimension {embeddings.shape[1]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, help="directory with model.safetensors, config.json, tokenizer.json")
    parser.add_argument("--max-length", type=int, required=True, help="truncate to this many tokens")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-onnx")
    check.add_argument("--onnx", required=True, help="model.onnx to check")
    check.add_argument("--sentences", required=True, help="the reference sentences; the longest is checked too")
    commands.add_parser("sanity")
    reference = commands.add_parser("reference")
    reference.add_argument("--sentences", required=True, help="one text per line")
    reference.add_argument("--out", required=True, help="embeddings.json to write")
    args = parser.parse_args()

    model = MiniLM(args.source, args.max_length)
    if args.command == "check-onnx":
        longest = max(read_sentences(args.sentences), key=len)
        check_onnx(model, args.onnx, [SANITY_QUERY, SANITY_RELATED, SANITY_UNRELATED, "Python", longest])
    elif args.command == "sanity":
        sanity(model)
    else:
        write_reference(model, read_sentences(args.sentences), args.out)


if __name__ == "__main__":
    main()
