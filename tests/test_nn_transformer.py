"""nn.Embedding, nn.LayerNorm, nn.MultiheadAttention and nn.TransformerEncoderLayer against PyTorch's
modules (same weights -> same outputs and parameter gradients), their state_dict names, from_pretrained,
and dropout where BERT has it (train mode differs, eval mode is deterministic)."""
from __future__ import annotations

import numpy as np
import pytest

import minitl
import minitl.nn as nn
from conftest import torch_or_skip


def _grads_match(module, torch_params, rtol=1e-5, atol=1e-6, names=None):
    for name, param in module.named_parameters():
        theirs = torch_params[names.get(name, name) if names else name]
        np.testing.assert_allclose(param.grad.numpy(), theirs.grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


def test_embedding_from_pretrained_freeze_and_padding(backend):
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    frozen = nn.Embedding.from_pretrained(matrix)
    assert not frozen.weight.requires_grad and frozen.weight.device == minitl.Tensor(0.0).device
    np.testing.assert_array_equal(frozen(np.array([[3, 0]])).numpy(), matrix[[[3, 0]]])
    matrix[0] = -1  # copied, not shared
    assert frozen.weight.numpy()[0, 0] == 0
    trainable = nn.Embedding.from_pretrained(np.ones((4, 3), np.float32), freeze=False, padding_idx=1)
    trainable(np.array([1, 1, 2])).sum().backward()
    np.testing.assert_array_equal(trainable.weight.grad.numpy(), [[0] * 3, [0] * 3, [1] * 3, [0] * 3])
    np.testing.assert_array_equal(trainable.weight.numpy()[1], 1)  # the pretrained padding row is kept
    assert np.all(nn.Embedding(5, 2, padding_idx=-1).weight.numpy()[4] == 0)
    with pytest.raises(ValueError, match="2-D"):
        nn.Embedding.from_pretrained(np.zeros(3))


def test_embedding_and_layer_norm_match_torch():
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 10, size=(2, 5))
    ours, theirs = nn.Embedding(10, 4, padding_idx=0), torch.nn.Embedding(10, 4, padding_idx=0)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
    norm, tnorm = nn.LayerNorm(4, eps=1e-12), torch.nn.LayerNorm(4, eps=1e-12)
    with torch.no_grad():
        tnorm.weight.copy_(torch.tensor(rng.standard_normal(4))), tnorm.bias.copy_(torch.tensor(rng.standard_normal(4)))
    norm.load_state_dict({k: v.detach().numpy() for k, v in tnorm.state_dict().items()})
    out, ref = norm(ours(ids)), tnorm(theirs(torch.tensor(ids)))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(ref.shape).astype(np.float32)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-5)
    _grads_match(norm, dict(tnorm.named_parameters()), rtol=1e-4, atol=1e-5)


def test_multihead_attention_matches_torch_module():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    mha = nn.MultiheadAttention(8, 2, dtype=np.float64)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # torch packs Q, K, V into one in_proj
        ref.in_proj_weight.copy_(torch.tensor(np.concatenate([mha.query.weight.numpy(), mha.key.weight.numpy(),
                                                              mha.value.weight.numpy()])))
        ref.in_proj_bias.copy_(torch.tensor(np.concatenate([mha.query.bias.numpy(), mha.key.bias.numpy(),
                                                            mha.value.bias.numpy()])))
        ref.out_proj.weight.copy_(torch.tensor(mha.out_proj.weight.numpy()))
        ref.out_proj.bias.copy_(torch.tensor(mha.out_proj.bias.numpy()))
    x = rng.standard_normal((3, 5, 8))
    pad = np.zeros((3, 5), dtype=bool)
    pad[1, 3:] = True
    out = mha(minitl.Tensor(x), mask=np.where(pad, -np.inf, 0.0)[:, None, None, :])
    expected, _ = ref(*[torch.tensor(x)] * 3, key_padding_mask=torch.tensor(pad))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)


def _torch_bert_layer(torch, p, x, mask, heads, eps):
    """BERT's post-LN layer from torch.nn.functional, on the minitl parameter names."""
    tf = torch.nn.functional
    n, t, d = x.shape

    def split(a):
        return a.reshape(n, t, heads, d // heads).transpose(1, 2)

    q, k, v = (split(tf.linear(x, p[f"self_attn.{s}.weight"], p[f"self_attn.{s}.bias"])) for s in ("query", "key", "value"))
    ctx = tf.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(n, t, d)
    attn = tf.linear(ctx, p["self_attn.out_proj.weight"], p["self_attn.out_proj.bias"])
    h = tf.layer_norm(x + attn, (d,), p["norm1.weight"], p["norm1.bias"], eps)
    ffn = tf.linear(tf.gelu(tf.linear(h, p["linear1.weight"], p["linear1.bias"])), p["linear2.weight"], p["linear2.bias"])
    return tf.layer_norm(h + ffn, (d,), p["norm2.weight"], p["norm2.bias"], eps)


def test_transformer_encoder_layer_matches_torch_and_has_bert_dropout(backend):
    torch = torch_or_skip()
    rng = np.random.default_rng(2)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, layer_norm_eps=1e-12, dtype=np.float64)
    assert [n for n, _ in layer.named_parameters()] == [
        f"self_attn.{s}.{w}" for s in ("query", "key", "value", "out_proj") for w in ("weight", "bias")
    ] + ["norm1.weight", "norm1.bias", "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
         "norm2.weight", "norm2.bias"]
    for name, param in layer.named_parameters():  # non-trivial LayerNorm parameters
        param.data = minitl.Tensor(param.numpy() + rng.standard_normal(param.shape) * 0.1).data
    x = rng.standard_normal((2, 4, 8))
    mask = np.zeros((2, 1, 1, 4))
    mask[0, ..., 3:] = -np.inf
    params = {n: torch.tensor(p.numpy(), requires_grad=True) for n, p in layer.named_parameters()}
    layer.eval()
    xt = minitl.Tensor(x, requires_grad=True)
    out = layer(xt, mask=mask)
    tx = torch.tensor(x, requires_grad=True)
    ref = _torch_bert_layer(torch, params, tx, torch.tensor(mask), 2, 1e-12)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-9, atol=1e-10)
    g = rng.standard_normal(ref.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    _grads_match(layer, params, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(xt.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-9)
    layer.train()
    minitl.manual_seed(0)
    first = layer(minitl.Tensor(x), mask=mask).numpy()
    second = layer(minitl.Tensor(x), mask=mask).numpy()
    assert not np.allclose(first, second)  # dropout on attention weights, attention output and FFN output
    with layer.evaluating():
        np.testing.assert_array_equal(layer(minitl.Tensor(x), mask=mask).numpy(), out.numpy())
