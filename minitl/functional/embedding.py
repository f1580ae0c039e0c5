"""Embedding lookup: a table of learned vectors, one row per token id.

    y[n, t, :] = W[ids[n, t], :]                     W (V, D), ids integer (any shape) -> ids.shape + (D,)

Backward (the gather's adjoint, a scatter-add): every occurrence of id v adds its upstream row,

    dJ/dW[v, :] = Σ_{(n, t): ids[n, t] = v} g[n, t, :]        (rows no id points at get 0)

and with ``padding_idx = p`` the row W[p] receives no gradient (it stays what it is, e.g. zeros),
as in PyTorch.  The ids themselves are not differentiable.
"""
from __future__ import annotations

import numpy

from .. import backend
from ..tensor import Function, Tensor


class Embedding(Function):
    """y = W[ids];  dJ/dW = scatter-add of g into the rows named by ids (``backend.index_add_rows``)."""

    def forward(self, weight, ids, padding_idx=None):
        xp = backend.get_array_module(weight)
        self.ids, self.shape, self.padding_idx = ids, weight.shape, padding_idx
        return xp.take(weight, ids, axis=0)

    def backward(self, g):
        xp = backend.get_array_module(g)
        grad = xp.zeros(self.shape, dtype=g.dtype)
        backend.index_add_rows(xp, grad, self.ids.reshape(-1), g.reshape(-1, self.shape[1]))
        if self.padding_idx is not None:
            grad[self.padding_idx] = 0
        return grad


def _embedding_reference(ids, weight, padding_idx=None):
    """The formula as plain loops (tests): forward rows and the function computing dJ/dW from g."""
    ids, weight = numpy.asarray(ids), numpy.asarray(weight)
    out = numpy.stack([weight[i] for i in ids.reshape(-1)]).reshape(ids.shape + weight.shape[1:]) if ids.size else \
        numpy.zeros(ids.shape + weight.shape[1:], weight.dtype)

    def grad_weight(g):
        grad = numpy.zeros_like(weight, dtype=numpy.float64)
        for i, row in zip(ids.reshape(-1), numpy.asarray(g).reshape(-1, weight.shape[1])):
            if i != padding_idx:
                grad[i] += row
        return grad

    return out, grad_weight


def embedding(ids, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Look rows of ``weight`` (V, D) up by integer ``ids``: y = W[ids], shape ids.shape + (D,).

    ``ids``: an integer array or Tensor (on the weight's device); values must lie in [0, V).
    ``padding_idx``: a row that receives no gradient.
    """
    data = ids.data if isinstance(ids, Tensor) else ids
    xp = backend.get_array_module(weight.data)
    if backend.get_array_module(data) is not xp:
        data = backend.to_device(numpy.asarray(data), weight.device)
    if data.dtype.kind not in "iu":
        raise TypeError(f"embedding: ids must be integers, got dtype {data.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be (num_embeddings, dim), got shape {weight.shape}")
    vocab = weight.shape[0]
    if data.size and (int(data.min()) < 0 or int(data.max()) >= vocab):
        raise IndexError(f"embedding: ids must lie in [0, {vocab}), got values in [{int(data.min())}, {int(data.max())}]")
    if padding_idx is not None and not -vocab <= padding_idx < vocab:
        raise ValueError(f"embedding: padding_idx {padding_idx} outside the {vocab} rows")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += vocab
    return Embedding.apply(weight, ids=data, padding_idx=padding_idx)
