"""Differentiable ops, one home per formula (torch-style names and signatures).

    dense.py       linear                      y = x Wᵀ + b
    activation.py  sigmoid, tanh, relu, ...    h = f(a)
    loss.py        cross_entropy, mse_loss...  J(ŷ, y)
    dropout.py     dropout
"""
from .activation import gelu, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .dense import linear
from .dropout import dropout
from .loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss

__all__ = [
    "linear", "sigmoid", "tanh", "relu", "leaky_relu", "gelu", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits", "dropout",
]
