#!/usr/bin/env python3
"""Write sentence-transformers/all-MiniLM-L6-v2 as an ONNX graph from its safetensors weights.

The graph is a plain BERT encoder (no pooler) built node by node with the `onnx`
helper API, so no deep-learning framework is involved:

    inputs   input_ids, attention_mask, token_type_ids   int64   [batch_size, sequence_length]
    output   last_hidden_state                           float32 [batch_size, sequence_length, 384]

Mean pooling over the attention mask and L2 normalisation happen in the caller
(fastembed), not in the graph. Run by scripts/setup-model, which checks the result
against the independent numpy implementation in scripts/minilm_numpy.py.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
OPSET = 17  # first opset with LayerNormalization
IR_VERSION = 8  # the IR version that goes with opset 17; keeps older runtimes able to load it
BATCH, SEQUENCE = "batch_size", "sequence_length"


class Graph:
    """Collects nodes and initializers; every value is named after the weights it uses."""

    def __init__(self, weights):
        self.weights = weights
        self.nodes = []
        self.initializers = []

    def const(self, name, value):
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, name, transpose=False):
        """Add the safetensors tensor `name` (transposed for torch's [out, in] Linear layout)."""
        value = self.weights[name]
        return self.const(name, np.ascontiguousarray(value.T) if transpose else value)

    def op(self, op_type, inputs, out, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def linear(g, x, prefix):
    """x @ W^T + b for the torch Linear `prefix`."""
    y = g.op("MatMul", [x, g.weight(f"{prefix}.weight", transpose=True)], f"{prefix}/MatMul")
    return g.op("Add", [y, g.weight(f"{prefix}.bias")], f"{prefix}/Add")


def layer_norm(g, x, prefix, eps, out=None):
    return g.op(
        "LayerNormalization",
        [x, g.weight(f"{prefix}.weight"), g.weight(f"{prefix}.bias")],
        out or f"{prefix}/LayerNormalization",
        axis=-1,
        epsilon=eps,
    )


def embeddings(g, eps):
    """Word + position + token-type embeddings, then LayerNorm."""
    p = "embeddings"
    words = g.op("Gather", [g.weight(f"{p}.word_embeddings.weight"), "input_ids"], f"{p}/words")
    # Positions 0..sequence_length-1: the first rows of the position table.
    seq_len = g.op("Shape", ["input_ids"], f"{p}/sequence_length", start=1, end=2)
    positions = g.op(
        "Slice",
        [g.weight(f"{p}.position_embeddings.weight"), g.const(f"{p}/zero", np.array([0], np.int64)), seq_len],
        f"{p}/positions",
    )
    types = g.op("Gather", [g.weight(f"{p}.token_type_embeddings.weight"), "token_type_ids"], f"{p}/types")
    summed = g.op("Add", [g.op("Add", [words, positions], f"{p}/words_positions"), types], f"{p}/sum")
    return layer_norm(g, summed, f"{p}.LayerNorm", eps)


def attention_bias(g):
    """Additive mask [batch, 1, 1, seq]: 0 where attention_mask is 1, float32 lowest where it is 0."""
    mask = g.op("Cast", ["attention_mask"], "mask/float", to=TensorProto.FLOAT)
    inverted = g.op("Sub", [g.const("mask/one", np.float32(1.0)), mask], "mask/inverted")
    bias = g.op("Mul", [inverted, g.const("mask/lowest", np.finfo(np.float32).min)], "mask/bias")
    return g.op("Unsqueeze", [bias, g.const("mask/axes", np.array([1, 2], np.int64))], "mask/bias_4d")


def self_attention(g, x, bias, prefix, heads, head_dim):
    """Multi-head scaled dot-product attention followed by the output projection."""
    split = g.const(f"{prefix}/split_heads_shape", np.array([0, 0, heads, head_dim], np.int64))

    def heads_of(name, perm):
        projected = linear(g, x, f"{prefix}.self.{name}")
        shaped = g.op("Reshape", [projected, split], f"{prefix}.self.{name}/Reshape")
        return g.op("Transpose", [shaped], f"{prefix}.self.{name}/Transpose", perm=perm)

    q = heads_of("query", [0, 2, 1, 3])  # [batch, heads, seq, head_dim]
    k = heads_of("key", [0, 2, 3, 1])  # [batch, heads, head_dim, seq]
    v = heads_of("value", [0, 2, 1, 3])  # [batch, heads, seq, head_dim]

    scores = g.op("MatMul", [q, k], f"{prefix}/scores")
    scaled = g.op("Mul", [scores, g.const(f"{prefix}/scale", np.float32(1.0 / np.sqrt(head_dim)))], f"{prefix}/scaled")
    masked = g.op("Add", [scaled, bias], f"{prefix}/masked")
    probs = g.op("Softmax", [masked], f"{prefix}/probs", axis=-1)
    context = g.op("MatMul", [probs, v], f"{prefix}/context")
    merged = g.op("Transpose", [context], f"{prefix}/context/Transpose", perm=[0, 2, 1, 3])
    merged = g.op(
        "Reshape",
        [merged, g.const(f"{prefix}/merge_heads_shape", np.array([0, 0, heads * head_dim], np.int64))],
        f"{prefix}/context/Reshape",
    )
    return linear(g, merged, f"{prefix}.output.dense")


def gelu(g, x, prefix):
    """Exact GELU: 0.5 * x * (1 + erf(x / sqrt(2)))."""
    scaled = g.op("Mul", [x, g.const(f"{prefix}/inv_sqrt2", np.float32(1.0 / np.sqrt(2.0)))], f"{prefix}/scaled")
    erf = g.op("Erf", [scaled], f"{prefix}/Erf")
    one_plus = g.op("Add", [erf, g.const(f"{prefix}/one", np.float32(1.0))], f"{prefix}/one_plus")
    half_x = g.op("Mul", [x, g.const(f"{prefix}/half", np.float32(0.5))], f"{prefix}/half_x")
    return g.op("Mul", [half_x, one_plus], f"{prefix}/Gelu")


def encoder_layer(g, x, bias, i, cfg, out=None):
    """Post-LayerNorm BERT block: attention + residual + LN, feed-forward + residual + LN."""
    p = f"encoder.layer.{i}"
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]
    attended = self_attention(g, x, bias, f"{p}.attention", heads, cfg["hidden_size"] // heads)
    residual = g.op("Add", [attended, x], f"{p}.attention/residual")
    x = layer_norm(g, residual, f"{p}.attention.output.LayerNorm", eps)

    hidden = gelu(g, linear(g, x, f"{p}.intermediate.dense"), f"{p}.intermediate")
    residual = g.op("Add", [linear(g, hidden, f"{p}.output.dense"), x], f"{p}.output/residual")
    return layer_norm(g, residual, f"{p}.output.LayerNorm", eps, out=out)


def encoder(g, cfg):
    """The BERT encoder over the three int64 inputs; returns `last_hidden_state`."""
    x = embeddings(g, cfg["layer_norm_eps"])
    bias = attention_bias(g)
    layers = cfg["num_hidden_layers"]
    for i in range(layers):
        x = encoder_layer(g, x, bias, i, cfg, out="last_hidden_state" if i == layers - 1 else None)
    return x


def encoder_inputs():
    return [
        helper.make_tensor_value_info(name, TensorProto.INT64, [BATCH, SEQUENCE])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]


def build_model(weights, cfg):
    g = Graph(weights)
    encoder(g, cfg)
    inputs = encoder_inputs()
    outputs = [
        helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [BATCH, SEQUENCE, cfg["hidden_size"]])
    ]
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="askmark scripts/export_minilm_onnx.py",
        doc_string=f"{MODEL_ID}: BERT encoder, last_hidden_state only (the caller pools and normalises)",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"model": MODEL_ID})
    return model


def load_config(path):
    cfg = json.loads(Path(path).read_text())
    expected = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in expected.items():
        if cfg.get(key) != value:
            raise SystemExit(f"{path}: {key} is {cfg.get(key)!r}, this exporter handles {value!r}")
    return cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="model.safetensors")
    parser.add_argument("--config", required=True, help="the model's config.json")
    parser.add_argument("--out", required=True, help="where to write model.onnx")
    args = parser.parse_args()

    model = build_model(load_file(args.weights), load_config(args.config))
    onnx.checker.check_model(model, full_check=True)  # includes strict shape inference
    onnx.save(model, args.out)
    print(f"wrote {args.out}: {len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers")


if __name__ == "__main__":
    main()
