"""Differentiable ops, one home per formula (torch-style names and signatures).

    dense.py       linear, linear_concat       y = x Wᵀ + b (linear_concat: k layers on one input, one GEMM)
    activation.py  sigmoid, tanh, relu, ...    h = f(a)
    loss.py        cross_entropy, mse_loss...  J(ŷ, y)
    multitask.py   joint_loss, task_terms      J = Σ_k λ_k L_k, or Σ_k exp(−s_k) L_k + s_k
    dropout.py     dropout
    conv.py        conv2d                      h_j = Σ_{i∈M_j} h_i * k_ij + b_j
    depthwise.py   depthwise_conv2d            y_c = Σ_{u,v} x_pad,c[shifted by u,v] · w_c,u,v (groups = C)
    pad.py         pad2d, same_padding         zero padding (TensorFlow's uneven "SAME")
    pool.py        max_pool2d, avg_pool2d...   h_j = max_{i∈R_j} a_i
    norm.py        batch_norm                  y = γ (x − μ)/√(σ² + ε) + β
    norm_act.py    batch_norm_relu             z = max(0, γ (x − μ)/√(σ² + ε) + β + r), one op
    recurrent.py   rnn/lstm/gru cells, layers  h_t = f(W_x x_t + W_h h_{t−1} + b), LSTM, GRU
    layer_norm.py  layer_norm                  y = γ (x − μ)/√(σ² + ε) + β, per position
    embedding.py   embedding                   y = W[ids]
    attention.py   scaled_dot_product_attention, multi_head_attention, masked_softmax,
                   self_attention_packed       O = softmax(Q Kᵀ/√d + M) V
    erf.py         erf                         erf(x) ≈ x P(x²)/Q(x²) in float32 (the exact GELU's)
"""
from .attention import (additive_mask, masked_softmax, multi_head_attention, scaled_dot_product_attention,
                        self_attention_packed)
from .activation import gelu, leaky_relu, log_softmax, relu, relu6, sigmoid, softmax, tanh
from .conv import conv2d
from .depthwise import depthwise_conv2d
from .dense import linear, linear_concat
from .dropout import dropout
from .embedding import embedding
from .layer_norm import layer_norm
from .norm import batch_norm
from .norm_act import batch_norm_relu
from .pad import pad2d, same_padding
from .pool import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from .recurrent import gru_cell, gru_layer, lstm_cell, lstm_layer, rnn_cell, rnn_layer, sequence_mask
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .multitask import joint_loss, task_terms

__all__ = [
    "linear", "linear_concat", "self_attention_packed", "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "pad2d", "same_padding", "gelu", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits", "dropout",
    "joint_loss", "task_terms",
    "conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "batch_norm",
    "batch_norm_relu",
    "rnn_cell", "lstm_cell", "gru_cell", "rnn_layer", "lstm_layer", "gru_layer", "sequence_mask",
    "layer_norm", "embedding", "scaled_dot_product_attention", "multi_head_attention", "masked_softmax",
    "additive_mask",
]
