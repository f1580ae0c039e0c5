"""RNNClassifier: embeddings -> BiLSTM/GRU -> pooled states -> head.  Pooling against NumPy over the
real steps only, padding changes nothing, frozen embeddings stay put, and it learns a toy task."""
from __future__ import annotations

import numpy as np
import pytest

import minitl
import minitl.functional as F
from minitl import optim
from minitl.models import RNNClassifier
from minitl.transfer.embeddings import WordEmbeddings, embedding_matrix


def _batch(rng, n=4, t=6, vocab=12):
    lengths = rng.integers(1, t + 1, size=n)
    ids = np.zeros((n, t), dtype=np.int64)
    for i, length in enumerate(lengths):
        ids[i, :length] = rng.integers(1, vocab, size=length)
    return ids, lengths


@pytest.mark.parametrize("cell,pooling", [("lstm", "meanmax"), ("gru", "last"), ("lstm", "last")])
def test_pooling_uses_the_real_steps_only_and_padding_changes_nothing(backend, cell, pooling):
    rng = np.random.default_rng(0)
    model = RNNClassifier(12, 5, hidden_size=4, cell=cell, pooling=pooling)
    model.eval()
    ids, lengths = _batch(rng)
    logits = model(minitl.Tensor(ids), lengths)
    assert logits.shape == (4, 2)
    padded = np.concatenate([ids, np.zeros((4, 3), dtype=np.int64)], axis=1)
    np.testing.assert_allclose(model(minitl.Tensor(padded), lengths).numpy(), logits.numpy(), rtol=1e-6, atol=1e-7)
    out, final = model.rnn(model.embedding(minitl.Tensor(ids)), lengths=lengths)
    pooled = model.pool(out, final, lengths).numpy()
    o = out.numpy()
    for i, length in enumerate(lengths):
        if pooling == "meanmax":
            expected = np.concatenate([o[i, :length].mean(axis=0), o[i, :length].max(axis=0)])
        else:  # forward direction's state after the last real word, backward direction's after the first
            expected = np.concatenate([o[i, length - 1, :4], o[i, 0, 4:]])
        np.testing.assert_allclose(pooled[i], expected, rtol=1e-5, atol=1e-6)


def test_frozen_pretrained_embeddings_stay_fixed_and_finetuned_ones_move():
    emb = WordEmbeddings(["good", "bad", "film"], np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32))
    table = embedding_matrix(emb, [2, 0, 1])
    np.testing.assert_array_equal(table[:2], 0)
    np.testing.assert_array_equal(table[2:], emb.vectors[[2, 0, 1]])
    ids, lengths = np.array([[2, 3, 4], [4, 1, 0]]), np.array([3, 2])
    for freeze in (True, False):
        model = RNNClassifier(embeddings=table, freeze_embeddings=freeze, hidden_size=3)
        before = model.embedding.weight.numpy().copy()
        opt = optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
        F.cross_entropy(model(minitl.Tensor(ids), lengths), minitl.Tensor(np.array([1, 0]))).backward()
        opt.step()
        after = model.embedding.weight.numpy()
        if freeze:
            np.testing.assert_array_equal(after, before)
            assert model.embedding.weight.grad is None
        else:
            assert not np.array_equal(after[2:5], before[2:5])
            np.testing.assert_array_equal(after[0], before[0])  # the padding row gets no gradient


def test_learns_which_words_carry_the_label():
    rng = np.random.default_rng(2)
    n, t, vocab = 64, 7, 10
    ids, lengths = _batch(rng, n, t, vocab)
    ids[ids == 1] = 3  # word 1 = "good", word 2 = "bad": each text gets exactly one of them
    ids[ids == 2] = 3
    labels = rng.integers(0, 2, size=n)
    where = (rng.random(n) * lengths).astype(int)
    ids[np.arange(n), where] = np.where(labels == 1, 1, 2)
    minitl.manual_seed(0)
    model = RNNClassifier(vocab, 8, hidden_size=8, dropout=0.0)
    opt = optim.Adam(model.parameters(), lr=0.03)
    for _ in range(40):
        loss = F.cross_entropy(model(minitl.Tensor(ids), lengths), minitl.Tensor(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    accuracy = (model(minitl.Tensor(ids), lengths).numpy().argmax(axis=1) == labels).mean()
    assert accuracy == 1.0 and loss.item() < 0.1


def test_bad_arguments():
    with pytest.raises(ValueError, match="cell must be"):
        RNNClassifier(5, 3, cell="transformer")
    with pytest.raises(ValueError, match="pooling must be"):
        RNNClassifier(5, 3, pooling="sum")
    with pytest.raises(ValueError, match="give an embedding matrix"):
        RNNClassifier()
