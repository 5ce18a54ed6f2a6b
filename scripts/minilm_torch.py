"""The all-MiniLM-L6-v2 BERT encoder as a trainable torch module, shared by the training scripts.

Its parameters keep the safetensors names (dots become "__" inside the ParameterDict), so the
trained weights go back to scripts/export_minilm_onnx.py (and export_judge_onnx.py) unchanged.
Dropout (0.1, as in config.json) is active only in training mode.

    MiniLM.hidden_states(ids, mask, types) -> last_hidden_state [batch, seq, hidden] (also forward;
                                              subclasses such as the judge override forward)
    MiniLM.pooled(ids, mask, types)   -> mean over the attention mask [batch, hidden]
    MiniLM.embed(ids, mask, types)    -> pooled and L2-normalised: the sentence embedding
"""

import math

import torch
import torch.nn.functional as F

DROPOUT = 0.1


class MiniLM(torch.nn.Module):
    """BERT encoder (no pooler) with the safetensors' parameter names."""

    def __init__(self, cfg, weights):
        super().__init__()
        self.cfg = cfg
        hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
        self.heads, self.head_dim = heads, hidden // heads
        self.params = torch.nn.ParameterDict(
            {name.replace(".", "__"): torch.nn.Parameter(tensor.float().clone()) for name, tensor in weights.items()}
        )

    def p(self, name):
        return self.params[name.replace(".", "__")]

    def linear(self, x, prefix):
        return F.linear(x, self.p(f"{prefix}.weight"), self.p(f"{prefix}.bias"))

    def norm(self, x, prefix):
        return F.layer_norm(x, (x.shape[-1],), self.p(f"{prefix}.weight"), self.p(f"{prefix}.bias"), self.cfg["layer_norm_eps"])

    def hidden_states(self, input_ids, attention_mask, token_type_ids):
        batch, length = input_ids.shape
        positions = self.p("embeddings.position_embeddings.weight")[:length]
        x = (
            F.embedding(input_ids, self.p("embeddings.word_embeddings.weight"))
            + positions
            + F.embedding(token_type_ids, self.p("embeddings.token_type_embeddings.weight"))
        )
        x = F.dropout(self.norm(x, "embeddings.LayerNorm"), DROPOUT, self.training)
        bias = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(self.cfg["num_hidden_layers"]):
            p = f"encoder.layer.{i}"

            def split(name):
                return self.linear(x, f"{p}.attention.self.{name}").view(batch, length, self.heads, self.head_dim).transpose(1, 2)

            scores = split("query") @ split("key").transpose(-1, -2) / math.sqrt(self.head_dim) + bias
            probs = F.dropout(scores.softmax(-1), DROPOUT, self.training)
            context = (probs @ split("value")).transpose(1, 2).reshape(batch, length, -1)
            attended = F.dropout(self.linear(context, f"{p}.attention.output.dense"), DROPOUT, self.training)
            x = self.norm(attended + x, f"{p}.attention.output.LayerNorm")
            hidden = F.gelu(self.linear(x, f"{p}.intermediate.dense"))
            x = self.norm(F.dropout(self.linear(hidden, f"{p}.output.dense"), DROPOUT, self.training) + x, f"{p}.output.LayerNorm")
        return x

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.hidden_states(input_ids, attention_mask, token_type_ids)

    def pooled(self, input_ids, attention_mask, token_type_ids):
        x = self.hidden_states(input_ids, attention_mask, token_type_ids)
        mask = attention_mask.unsqueeze(-1).float()
        return (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def embed(self, input_ids, attention_mask, token_type_ids):
        return F.normalize(self.pooled(input_ids, attention_mask, token_type_ids), dim=-1)

    def encoder_weights(self):
        """The encoder's tensors under their safetensors names."""
        return {name.replace("__", "."): tensor.detach().contiguous() for name, tensor in self.params.items()}
