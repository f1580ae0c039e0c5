"""A word-level tokenizer over a word embedding's vocabulary, counting out-of-vocabulary words.

Splitting (GloVe 6B was built from lower-cased, Penn-Treebank-tokenized text, so the splitter
follows it): lower-case; words are runs of letters/digits, with inner hyphens and dots
("well-made", "u.s"); clitics split off as GloVe has them ("don't" -> "do", "n't"; "can't" -> "ca",
"n't"; "it's" -> "it", "'s"); every other non-space character is a token of its own ("!", ",").

Ids: 0 = ``<pad>``, 1 = ``<unk>`` (every word outside the vocabulary), then the vocabulary's words.
NumPy only: this module knows nothing of tensors.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[^\W_]+(?=n't\b)|n't\b|'(?:s|re|ve|ll|d|m)\b|[^\W_]+(?:[-.][^\W_]+)*|\.{2,}|-{2,}|\S")


def split_words(text: str, lowercase: bool = True) -> list:
    """The word tokens of ``text`` (see the module docstring)."""
    if lowercase:
        text = text.lower()
    return _TOKEN.findall(text.replace("`", "'").replace("\u2019", "'"))


class WordTokenizer:
    """Words -> ids over ``words`` (a vocabulary list: id 2 + i is ``words[i]``), with OOV counts.

    ``encode_batch(texts, max_length)`` -> (ids int64 (B, T) padded with 0, lengths int64 (B,)),
    T the longest text in the batch (after truncation to ``max_length`` words; an empty text
    becomes one ``<unk>``, so every row has a length ≥ 1).  ``counts`` accumulates tokens seen and
    tokens unknown over every call; ``oov_rate`` is their ratio.  ``encode(text, max_length)``,
    ``pad_id``, ``vocab`` and ``vocab_size`` are WordPieceTokenizer's interface (the text datasets use it).
    """

    pad_id = 0

    def __init__(self, words, lowercase: bool = True, max_length: int | None = None):
        self.words = [PAD, UNK] + list(words)
        self.index = {}
        for i, word in enumerate(self.words):
            self.index.setdefault(word, i)
        self.lowercase, self.max_length = lowercase, max_length
        self.counts = Counter()

    @classmethod
    def for_corpus(cls, vocabulary, texts, lowercase: bool = True, max_length: int | None = None):
        """A tokenizer over the words of ``vocabulary`` (an embedding's words) that occur in ``texts``.

        Returns (tokenizer, rows): ``rows[i]`` is the position in ``vocabulary`` of tokenizer word
        2 + i, for building the embedding matrix.  Keeping only the corpus's words changes no
        result — rows never looked up are never read nor updated — it only makes the table small.
        """
        position = {}
        for i, word in enumerate(vocabulary):
            position.setdefault(word, i)
        seen = set()
        for text in texts:
            seen.update(split_words(text, lowercase))
        keep = sorted((position[w] for w in seen if w in position))
        words = [vocabulary[i] for i in keep]
        return cls(words, lowercase, max_length), numpy.asarray(keep, dtype=numpy.int64)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def vocab(self) -> dict:
        """word -> id."""
        return self.index

    def encode(self, text: str, max_length: int | None = -1) -> list:
        """The ids of ``text``'s words, truncated to ``max_length`` words (-1: the tokenizer's own; None: all)."""
        max_length = self.max_length if max_length == -1 else max_length
        tokens = split_words(text, self.lowercase)
        if max_length is not None:
            tokens = tokens[: max_length]
        ids = [self.index.get(t, 1) for t in tokens] or [1]
        self.counts["tokens"] += len(tokens)
        self.counts["unknown"] += sum(1 for i in ids if i == 1) if tokens else 0
        return ids

    def encode_batch(self, texts, max_length: int | None = None):
        if max_length is not None:
            saved, self.max_length = self.max_length, max_length
        try:
            encoded = [self.encode(t) for t in texts]
        finally:
            if max_length is not None:
                self.max_length = saved
        lengths = numpy.array([len(e) for e in encoded], dtype=numpy.int64)
        ids = numpy.zeros((len(encoded), int(lengths.max()) if len(encoded) else 0), dtype=numpy.int64)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = e
        return ids, lengths

    @property
    def oov_rate(self) -> float:
        return self.counts["unknown"] / self.counts["tokens"] if self.counts["tokens"] else 0.0

    def describe_oov(self) -> str:
        return (f"{self.counts['unknown']} of {self.counts['tokens']} word tokens out of the vocabulary "
                f"({100 * self.oov_rate:.1f}%)")
