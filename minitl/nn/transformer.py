"""Multi-head attention and the post-LN Transformer encoder layer (BERT's), wired to F.multi_head_attention.

    MultiheadAttention       MHA(Q, K, V) = [head_1 … head_h] W_Oᵀ + b_O,
                             head_i = softmax((Q W_Qiᵀ)(K W_Kiᵀ)ᵀ/√d + M) (V W_Viᵀ)
                             parameters query, key, value, out_proj (Linear, D -> D each)
    TransformerEncoderLayer  post-LN, as BERT (Devlin et al., 2019):
                             h = LayerNorm₁(x + Dropout(MHA(x, x, x)))           (norm1)
                             y = LayerNorm₂(h + Dropout(W₂ act(W₁ h + b₁) + b₂))  (linear1, linear2, norm2)
                             attention weights dropped out too (``attention_dropout``)

BERT's own names (``attention.self.query``, ``attention.output.dense``, ``intermediate.dense``,
``output.LayerNorm`` …) map onto these in minitl.transfer.bert.
"""
from __future__ import annotations

import numpy

from .. import functional as F
from ..tensor import Tensor
from .layers import Dropout, Linear
from .module import Module
from .norm import LayerNorm

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),  # the exact erf form, BERT's "gelu"
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "tanh": F.tanh,
}


def activation_fn(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MultiheadAttention(Module):
    """Multi-head (self- or cross-) attention, separate Q/K/V projections as BERT stores them.

    Self-attention (no ``key``/``value`` given) runs the three projections as one GEMM over the
    stacked weights (F.linear_concat) and attends on the packed result (F.self_attention_packed):
    the parameters and their names stay ``query``, ``key``, ``value``, ``out_proj``.

    ``forward(query, key=None, value=None, mask=None)``: (N, T, D) inputs, key/value default to query;
    ``mask`` additive (0 keep, −∞ drop), broadcastable to (N, h, Tq, Tk).  ``dropout``: on the weights.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 dtype=numpy.float32, device=None):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        for name in ("query", "key", "value", "out_proj"):
            setattr(self, name, Linear(embed_dim, embed_dim, bias=bias, dtype=dtype, device=device))

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None, mask=None) -> Tensor:
        key = query if key is None else key
        value = key if value is None else value
        return F.multi_head_attention(
            query, key, value, self.num_heads,
            self.query.weight, self.query.bias, self.key.weight, self.key.bias,
            self.value.weight, self.value.bias, self.out_proj.weight, self.out_proj.bias,
            mask=mask, dropout_p=self.dropout, training=self.training,
        )

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"


class TransformerEncoderLayer(Module):
    """A post-LN encoder layer: self-attention + residual + LayerNorm, then FFN + residual + LayerNorm."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "gelu", layer_norm_eps: float = 1e-12, attention_dropout: float | None = None,
                 dtype=numpy.float32, device=None):
        super().__init__()
        self.activation_name = activation
        self._activation = activation_fn(activation)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout if attention_dropout is None else attention_dropout,
                                            dtype=dtype, device=device)
        self.dropout1 = Dropout(dropout)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype, device=device)
        self.linear1 = Linear(d_model, dim_feedforward, dtype=dtype, device=device)
        self.linear2 = Linear(dim_feedforward, d_model, dtype=dtype, device=device)
        self.dropout2 = Dropout(dropout)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype, device=device)

    def forward(self, x: Tensor, mask=None) -> Tensor:
        h = self.norm1(x + self.dropout1(self.self_attn(x, mask=mask)))
        return self.norm2(h + self.dropout2(self.linear2(self._activation(self.linear1(h)))))

    def extra_repr(self) -> str:
        return f"activation={self.activation_name}"
