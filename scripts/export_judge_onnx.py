"""The pair judge as an ONNX graph: the all-MiniLM-L6-v2 encoder of export_minilm_onnx.py with
its fine-tuned weights, mean pooling over the attention mask and a 3-way linear head.

    inputs   input_ids, attention_mask, token_type_ids   int64   [batch_size, sequence_length]
    output   logits (entailment, neutral, contradiction)  float32 [batch_size, 3]

Used by scripts/train_judge.py; the result is quantised there.
"""

import numpy as np
from onnx import TensorProto, helper

from export_minilm_onnx import BATCH, IR_VERSION, OPSET, Graph, encoder, encoder_inputs, linear


def build_judge(weights, cfg):
    g = Graph(weights)
    hidden = encoder(g, cfg)
    mask = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], "pool/mask", to=TensorProto.FLOAT), g.const("pool/axes", np.array([2], np.int64))], "pool/mask_3d")
    summed = g.op("ReduceSum", [g.op("Mul", [hidden, mask], "pool/masked"), g.const("pool/sequence_axis", np.array([1], np.int64))], "pool/sum", keepdims=0)
    counts = g.op("ReduceSum", [mask, g.const("pool/count_axis", np.array([1], np.int64))], "pool/count", keepdims=0)
    counts = g.op("Max", [counts, g.const("pool/epsilon", np.float32(1e-9))], "pool/count_clamped")
    pooled = g.op("Div", [summed, counts], "pool/mean")
    logits = linear(g, pooled, "classifier")
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [BATCH, 3])]
    graph = helper.make_graph(g.nodes, "askmark-judge", encoder_inputs(), outputs, g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="askmark scripts/export_judge_onnx.py")
    model.ir_version = IR_VERSION
    return model
