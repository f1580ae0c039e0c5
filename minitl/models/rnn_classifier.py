"""A recurrent text classifier: word embeddings -> BiLSTM (or GRU) -> pooled states -> linear head.

    e_t = E[w_t]                                    the word vectors (pretrained GloVe, or random)
    (h_1, …, h_T) = BiLSTM(e_1, …, e_T)             h_t = [h→_t ; h←_t], each direction of size H
    p = [ (1/L) Σ_{t≤L} h_t ; max_{t≤L} h_t ]       ``pooling="meanmax"``: over the L real words only
    p = [ h→_L ; h←_1 ]                             ``pooling="last"``: the final state of each direction
    logits = W p + b

Padding (ids 0 after a text's length L) changes no state and gets no gradient (the recurrent
layer's ``lengths``).  The embedding table comes in as a matrix: the model knows no file format.
"""
from __future__ import annotations

import numpy

from .. import nn
from ..tensor import Tensor, concatenate

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLINGS = ("meanmax", "last")


class RNNEncoder(nn.Module):
    """Word ids -> the pooled feature p of the module docstring, (N, F) with F = ``num_features``.

    ``embeddings``: a (V, D) matrix to start the embedding table from (``freeze_embeddings``: keep it
    fixed), or None for a random N(0, 1) table of ``vocab_size`` × ``embedding_dim``.  Row 0 is padding.
    ``features(ids, lengths)``; the text workflow runs it as two segments on ``(ids, mask)`` batches
    (mask (N, T): 1 on real words): ``embed`` (e_t = E[w_t]) then ``encode`` (dropout, the recurrent
    layer, pooling), so that frozen embeddings are one segment that runs without a graph.
    """

    def __init__(self, vocab_size=None, embedding_dim=None, hidden_size=64, cell="lstm", num_layers=1,
                 bidirectional=True, pooling="meanmax", dropout=0.3, embeddings=None, freeze_embeddings=False):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"RNNClassifier: cell must be one of {sorted(CELLS)}, got {cell!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"RNNClassifier: pooling must be one of {POOLINGS}, got {pooling!r}")
        if embeddings is not None:
            self.embedding = nn.Embedding.from_pretrained(embeddings, freeze=freeze_embeddings, padding_idx=0)
        elif vocab_size is None or embedding_dim is None:
            raise ValueError("RNNClassifier: give an embedding matrix, or vocab_size and embedding_dim")
        else:
            self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
            self.embedding.weight.requires_grad = not freeze_embeddings
        dim = self.embedding.embedding_dim
        self.rnn = CELLS[cell](dim, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        directions = 2 if bidirectional else 1
        self.num_features = hidden_size * directions * (2 if pooling == "meanmax" else 1)
        self.cell, self.pooling = cell, pooling

    def features(self, ids, lengths) -> Tensor:
        lengths = _host_lengths(lengths)
        out, final = self.rnn(self.dropout(self.embedding(ids)), lengths=lengths)
        return self.pool(out, final, lengths)

    def embed(self, batch):
        """(ids, mask) -> (E[ids], mask): the first segment."""
        ids, mask = batch
        return self.embedding(ids), mask

    def encode(self, batch) -> Tensor:
        """(vectors, mask) -> p: the second segment (lengths = Σ_t mask)."""
        vectors, mask = batch
        lengths = _host_lengths(mask).sum(axis=1)
        out, final = self.rnn(self.dropout(vectors), lengths=lengths)
        return self.pool(out, final, lengths)

    def forward_features(self, batch) -> Tensor:
        return self.encode(self.embed(batch))

    def forward(self, batch) -> Tensor:
        return self.forward_features(batch)

    def pool(self, out: Tensor, final, lengths) -> Tensor:
        """The pooled feature p of the module docstring, (N, F)."""
        if self.pooling == "last":
            h = final[0] if isinstance(final, tuple) else final  # (layers·directions, N, H)
            directions = 2 if self.rnn.bidirectional else 1
            return concatenate([h[-directions + d] for d in range(directions)], axis=1)
        t = out.shape[1]
        valid = numpy.arange(t)[None, :] < lengths[:, None]  # (N, T) on the host
        count = Tensor(numpy.maximum(lengths, 1).astype(out.dtype)[:, None], device=out.device)
        mean = out.sum(axis=1) / count  # padded outputs are exactly 0
        penalty = Tensor(numpy.where(valid, 0.0, -1e30).astype(out.dtype)[:, :, None], device=out.device)
        return concatenate([mean, (out + penalty).max(axis=1)], axis=1)


def _host_lengths(lengths) -> numpy.ndarray:
    return numpy.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths, dtype=numpy.int64)


class RNNClassifier(RNNEncoder):
    """``forward(ids (N, T) int, lengths (N,) int) -> logits (N, num_classes)``: the encoder's p,
    dropout, then the linear head.  Arguments as :class:`RNNEncoder`'s, plus ``num_classes``."""

    def __init__(self, vocab_size=None, embedding_dim=None, num_classes=2, hidden_size=64, cell="lstm",
                 num_layers=1, bidirectional=True, pooling="meanmax", dropout=0.3, embeddings=None,
                 freeze_embeddings=False):
        super().__init__(vocab_size, embedding_dim, hidden_size, cell, num_layers, bidirectional, pooling, dropout,
                         embeddings, freeze_embeddings)
        self.head = nn.Linear(self.num_features, num_classes)
        self.num_classes = num_classes

    def forward(self, ids, lengths) -> Tensor:
        return self.head(self.dropout(self.features(ids, lengths)))
