"""A plain-PyTorch BERT encoder on Hugging Face's parameter names, written from the paper (Devlin et al., 2019)
and BertModel's published layout — no transformers package.  The tests hold minitl's BertModel to it."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as tf


def bert_forward(p: dict, ids, mask, heads: int, eps: float = 1e-12, dropout: float = 0.0):
    """Hidden states (N, T, D) of a post-LN BERT: p maps HF names to tensors; mask (N, T) 1/0.
    ``dropout`` > 0: BERT's dropouts (embeddings, attention weights, attention output, FFN output)."""

    def drop(x):
        return tf.dropout(x, dropout, training=True) if dropout else x

    n, t = ids.shape
    e = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.position_embeddings.weight"][:t][None] \
        + p["embeddings.token_type_embeddings.weight"][0]
    d = e.shape[-1]
    h = drop(tf.layer_norm(e, (d,), p["embeddings.LayerNorm.weight"], p["embeddings.LayerNorm.bias"], eps))
    additive = torch.zeros(n, 1, 1, t, dtype=h.dtype).masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    layers = 1 + max(int(k.split(".")[2]) for k in p if k.startswith("encoder.layer."))
    for i in range(layers):
        q = f"encoder.layer.{i}."

        def lin(x, name):
            return x @ p[q + name + ".weight"].T + p[q + name + ".bias"]

        def split(x):
            return x.reshape(n, t, heads, d // heads).permute(0, 2, 1, 3)

        qh, kh, vh = (split(lin(h, f"attention.self.{s}")) for s in ("query", "key", "value"))
        scores = qh @ kh.transpose(-1, -2) / math.sqrt(d // heads) + additive
        ctx = (drop(torch.softmax(scores, dim=-1)) @ vh).permute(0, 2, 1, 3).reshape(n, t, d)
        a = tf.layer_norm(h + drop(lin(ctx, "attention.output.dense")), (d,), p[q + "attention.output.LayerNorm.weight"],
                          p[q + "attention.output.LayerNorm.bias"], eps)
        f = lin(tf.gelu(lin(a, "intermediate.dense")), "output.dense")
        h = tf.layer_norm(a + drop(f), (d,), p[q + "output.LayerNorm.weight"], p[q + "output.LayerNorm.bias"], eps)
    return h


def mean_pool(h, mask):
    m = mask[:, :, None].to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
