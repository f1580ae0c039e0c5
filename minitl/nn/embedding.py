"""Embedding: a lookup table of learned vectors (the math is F.embedding: y = W[ids])."""
from __future__ import annotations

import numpy

from .. import backend
from .. import functional as F
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


class Embedding(Module):
    """y = W[ids], W (num_embeddings, embedding_dim) ~ N(0, 1) as PyTorch; row ``padding_idx`` zero, no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype=numpy.float32, device=None):
        super().__init__()
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"Embedding: padding_idx {padding_idx} outside the {num_embeddings} rows")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx % num_embeddings if padding_idx is not None else None
        self.weight = Parameter(numpy.empty((num_embeddings, embedding_dim), dtype=dtype), device=device)
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None) -> Embedding:
        """An Embedding holding ``embeddings`` (a (V, D) array or Tensor, copied); ``freeze``: no gradient.

        The padding row keeps its given values (as PyTorch's ``from_pretrained``); it only gets no gradient.
        """
        data = embeddings.numpy() if isinstance(embeddings, Tensor) else numpy.asarray(embeddings)
        if data.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: expected a 2-D (num_embeddings, dim) matrix, got shape {data.shape}")
        if data.dtype.kind != "f":
            raise TypeError(f"Embedding.from_pretrained: expected floating-point vectors, got dtype {data.dtype}")
        device = embeddings.device if isinstance(embeddings, Tensor) else None
        module = cls(data.shape[0], data.shape[1], padding_idx=padding_idx, dtype=data.dtype, device=device)
        module.weight.data = backend.to_device(numpy.array(data, copy=True), module.weight.device)
        module.weight.requires_grad = not freeze
        return module

    def forward(self, ids) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
