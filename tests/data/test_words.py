"""The word-level tokenizer: GloVe-style splitting, ids over a vocabulary, padding, OOV counting."""
from __future__ import annotations

import numpy as np

from minitl.data.words import WordTokenizer, split_words


def test_split_words_lowercases_and_splits_punctuation_and_clitics():
    assert split_words("It's a well-made film -- don't miss it! Can't wait...") == [
        "it", "'s", "a", "well-made", "film", "--", "do", "n't", "miss", "it", "!", "ca", "n't", "wait", "..."]
    assert split_words("U.S. (2002), \u2019twas") == ["u.s", ".", "(", "2002", ")", ",", "'", "twas"]
    assert split_words("Keep CASE", lowercase=False) == ["Keep", "CASE"]


def test_encode_batch_pads_counts_unknown_words_and_truncates():
    tok = WordTokenizer(["the", "film", "good", "."])
    ids, lengths = tok.encode_batch(["The film is good.", "", "Film!"])
    assert ids.dtype == np.int64 and lengths.tolist() == [5, 1, 2]
    np.testing.assert_array_equal(ids, [[2, 3, 1, 4, 5], [1, 0, 0, 0, 0], [3, 1, 0, 0, 0]])
    assert tok.counts["tokens"] == 7 and tok.counts["unknown"] == 2  # "is", "!"; the empty text counts nothing
    assert abs(tok.oov_rate - 2 / 7) < 1e-12 and "2 of 7 word tokens" in tok.describe_oov()
    ids, lengths = tok.encode_batch(["the film is good ."], max_length=2)
    assert lengths.tolist() == [2] and tok.max_length is None


def test_for_corpus_keeps_the_vocabulary_words_that_occur_with_their_rows():
    vocabulary = ["the", ",", "king", "queen", "frog", "the"]
    tok, rows = WordTokenizer.for_corpus(vocabulary, ["The queen, and the KING."])
    assert tok.words == ["<pad>", "<unk>", "the", ",", "king", "queen"]
    assert rows.tolist() == [0, 1, 2, 3]  # tokenizer word 2 + i is vocabulary[rows[i]]
    assert tok.encode("queen and king") == [5, 1, 4]
