"""BERT's uncased WordPiece tokenizer, from ``vocab.txt``, in pure Python.

    ids(text) = [CLS] + wordpiece(w) for w in pre_tokenize(normalize(text)) + [SEP]

normalize (BERT's BasicTokenizer / the ``tokenizers`` BertNormalizer, in that order):
    1. clean: drop NUL, U+FFFD and control characters (Unicode category C*, except \\t \\n \\r);
       every whitespace character becomes a space
    2. CJK ideographs get a space on each side (each one is a word)
    3. strip accents: NFD, then drop non-spacing marks (category Mn)
    4. lower-case, character by character
pre_tokenize: split on whitespace, and make every punctuation character (ASCII non-alphanumeric
    printable characters, or Unicode category P*) a word of its own.
wordpiece(w): greedy longest-match-first: the longest prefix of w in the vocabulary, then the
    longest vocabulary entry "##rest..." for what follows, and so on; if some position matches
    nothing, or w is longer than ``max_chars_per_word`` (100), the whole word is [UNK].

Special-token literals in the raw text ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]") map to their
ids, as the reference tokenizer does.  Truncation keeps the first ``max_length - 2`` word pieces.

Speed: texts are mostly ASCII, so normalisation is one ``str.translate`` + ``lower`` there (the
general path handles the rest exactly), and each distinct word is split into pieces once and
cached.  Nothing here knows about tensors: batches are int64 NumPy arrays.
"""
from __future__ import annotations

import os
import re
import unicodedata

import numpy

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")


def is_cjk(ch: str) -> bool:
    """A CJK Unified Ideograph (BERT's ranges; Hangul, Hiragana and Katakana are not)."""
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def is_whitespace(ch: str) -> bool:
    """Unicode White_Space (Python's isspace without the information separators U+001C-U+001F)."""
    return ch.isspace() and not "\x1c" <= ch <= "\x1f"


def is_control(ch: str) -> bool:
    """Category C* (control, format, surrogate, private use, unassigned), except \\t \\n \\r."""
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def is_punctuation(ch: str) -> bool:
    """BERT's punctuation: every printable ASCII non-alphanumeric character, or category P*."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _ascii_table() -> dict:
    """One translate table for ASCII text: steps 1 and the punctuation split (no CJK, no accents)."""
    table = {}
    for cp in range(128):
        ch = chr(cp)
        if cp == 0 or is_control(ch):
            table[cp] = None
        elif is_whitespace(ch):
            table[cp] = " "
        elif is_punctuation(ch):
            table[cp] = f" {ch} "
    return table


_ASCII = _ascii_table()


class _CharMaps(dict):
    """Per-character results of the general path, computed once per distinct character."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def __missing__(self, ch):
        value = self[ch] = self.fn(ch)
        return value


def _clean_char(ch: str) -> str:  # steps 1 and 2
    if ch == "\0" or ch == "\ufffd" or is_control(ch):
        return ""
    if is_whitespace(ch):
        return " "
    return f" {ch} " if is_cjk(ch) else ch


def _finish_char(ch: str) -> str:  # step 3's filter, step 4, and the pre-tokenizer's split
    if unicodedata.category(ch) == "Mn":
        return ""
    low = ch.lower()
    if len(low) != 1:  # e.g. U+0130 -> "i" + U+0307: each produced character is split on its own
        return "".join(f" {c} " if is_punctuation(c) else (" " if is_whitespace(c) else c) for c in low)
    if is_whitespace(low):
        return " "
    return f" {low} " if is_punctuation(low) else low


def basic_words(text: str, _clean=_CharMaps(_clean_char), _finish=_CharMaps(_finish_char)) -> list:
    """normalize + pre_tokenize: the words (and punctuation marks) of ``text``, in order."""
    if text.isascii():
        return text.translate(_ASCII).lower().split()
    text = "".join([_clean[c] for c in text])
    text = unicodedata.normalize("NFD", text)
    return "".join([_finish[c] for c in text]).split()


def load_vocab(path) -> dict:
    """``vocab.txt``: one token per line, id = line number (0-based)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            tokens = handle.read().split("\n")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such vocabulary file: {path}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if tokens and tokens[-1] == "":
        tokens.pop()
    vocab = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token.rstrip("\r"), i)
    if not vocab:
        raise ValueError(f"{path}: empty vocabulary")
    return vocab


class WordPieceTokenizer:
    """BERT uncased WordPiece: ``encode(text)`` -> ids, ``encode_batch(texts)`` -> padded arrays.

    vocab: a ``vocab.txt`` path or a {token: id} dict.  max_length: default truncation length,
    counting [CLS] and [SEP] (None: no truncation).
    """

    def __init__(self, vocab, max_length: int | None = 512, max_chars_per_word: int = 100,
                 unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]"):
        self.vocab = dict(vocab) if isinstance(vocab, dict) else load_vocab(vocab)
        missing = [t for t in (unk_token, cls_token, sep_token, pad_token) if t not in self.vocab]
        if missing:
            raise ValueError(f"vocabulary lacks the special token(s) {', '.join(missing)}")
        self.unk_id, self.cls_id = self.vocab[unk_token], self.vocab[cls_token]
        self.sep_id, self.pad_id = self.vocab[sep_token], self.vocab[pad_token]
        self.specials = {t: self.vocab[t] for t in SPECIAL_TOKENS if t in self.vocab}
        self.max_length, self.max_chars_per_word = max_length, int(max_chars_per_word)
        self._longest = max(len(t) for t in self.vocab)
        self._cache: dict = {}

    @classmethod
    def from_pretrained_dir(cls, folder, **kwargs) -> "WordPieceTokenizer":
        """The tokenizer of a BERT model folder (its ``vocab.txt``)."""
        return cls(os.path.join(os.fspath(folder), "vocab.txt"), **kwargs)

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    def wordpiece(self, word: str) -> list:
        """Greedy longest-match-first sub-word ids of one word (cached): see the module docstring."""
        ids = self._cache.get(word)
        if ids is not None:
            return ids
        vocab, n = self.vocab, len(word)
        ids = []
        if n > self.max_chars_per_word:
            ids = [self.unk_id]
        else:
            start = 0
            while start < n:
                prefix = "##" if start else ""
                end = min(n, start + self._longest)
                while end > start:
                    piece = vocab.get(prefix + word[start:end])
                    if piece is not None:
                        break
                    end -= 1
                if end == start:
                    ids = [self.unk_id]
                    break
                ids.append(piece)
                start = end
        if len(self._cache) < 1_000_000:
            self._cache[word] = ids
        return ids

    def tokenize_ids(self, text: str) -> list:
        """The word-piece ids of ``text`` without [CLS]/[SEP] and without truncation."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        out = []
        pieces = _SPECIAL_RE.split(text) if "[" in text else (text,)
        for k, part in enumerate(pieces):
            if k % 2:
                if part in self.specials:
                    out.append(self.specials[part])
                    continue
                words = basic_words(part)  # a literal the vocabulary lacks: ordinary text
            else:
                words = basic_words(part)
            for word in words:
                out.extend(self.wordpiece(word))
        return out

    def tokenize(self, text: str) -> list:
        """The word pieces of ``text`` as strings (for reading; ids are what models take)."""
        inverse = {i: t for t, i in self.vocab.items()}
        return [inverse[i] for i in self.tokenize_ids(text)]

    def encode(self, text: str, max_length: int | None = -1) -> list:
        """[CLS] pieces [SEP] as a list of ids, truncated to ``max_length`` (-1: the tokenizer's
        default; None: no truncation)."""
        max_length = self.max_length if max_length == -1 else max_length
        ids = self.tokenize_ids(text)
        if max_length is not None:
            if max_length < 2:
                raise ValueError(f"max_length must be at least 2 ([CLS] and [SEP]), got {max_length}")
            ids = ids[:max_length - 2]
        return [self.cls_id, *ids, self.sep_id]

    def encode_batch(self, texts, max_length: int | None = -1):
        """(input_ids, attention_mask), both int64 (N, T): T = the longest encoded text; shorter
        rows are padded with [PAD] and mask 0 (1 marks a real token)."""
        encoded = [self.encode(t, max_length) for t in texts]
        return pad_batch(encoded, self.pad_id)

    def lengths(self, texts, max_length: int | None = -1) -> numpy.ndarray:
        """Encoded length of every text (with [CLS]/[SEP], after truncation): for length buckets."""
        return numpy.asarray([len(self.encode(t, max_length)) for t in texts], dtype=numpy.int64)


def pad_batch(sequences, pad_id: int = 0):
    """Right-pad id lists to the longest: (input_ids, attention_mask), int64 (N, T)."""
    if not sequences:
        return numpy.zeros((0, 0), numpy.int64), numpy.zeros((0, 0), numpy.int64)
    width = max(len(s) for s in sequences)
    ids = numpy.full((len(sequences), width), pad_id, dtype=numpy.int64)
    mask = numpy.zeros((len(sequences), width), dtype=numpy.int64)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = seq
        mask[row, :len(seq)] = 1
    return ids, mask
