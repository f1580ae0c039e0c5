"""Text datasets: labelled texts in memory, and the same texts tokenized once into id lists.

    TextDataset    ds[i] = (text, label); the dataset protocol of minitl.data.datasets (len, classes,
                   targets, fingerprint, get_batch), so Subset / stratified_subset work unchanged
    EncodedText    a text dataset tokenized once: get_batch(indices) = ((input_ids, attention_mask), labels),
                   int64 (B, T) padded to the batch's longest text; ``lengths`` for length buckets
"""
from __future__ import annotations

import hashlib

import numpy

from ..datasets import InMemoryDataset
from .wordpiece import pad_batch


class TextDataset(InMemoryDataset):
    """``texts`` (list of str) with int ``labels`` in 0..len(classes)-1."""

    unit = "texts"
    _fingerprint_tag = b"TextDataset"

    def __init__(self, texts, labels, classes, name: str = "texts"):
        texts = list(texts)
        labels = numpy.asarray(labels, dtype=numpy.int64)
        if labels.shape != (len(texts),):
            raise ValueError(f"TextDataset: {len(texts)} texts but labels of shape {labels.shape}")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"TextDataset: text {bad} is a {type(texts[bad]).__name__}, not a str")
        classes = [str(c) for c in classes]
        if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
            raise ValueError(f"TextDataset: labels must lie in 0..{len(classes) - 1} ({len(classes)} classes)")
        self.texts, self.labels, self.classes, self.name = texts, labels, classes, name

    def _sample(self, index):
        return self.texts[index]

    def _gather(self, indices):
        return [self.texts[i] for i in indices]

    def _hash_samples(self, h) -> None:
        for text in self.texts:
            h.update(text.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        h.update(self.labels.tobytes())

    def __repr__(self) -> str:
        return f"TextDataset({self.name!r}, {len(self)} texts, {len(self.classes)} classes)"


def texts_of(dataset) -> list:
    """All texts of a TextDataset or a Subset of one, in dataset order."""
    texts, _ = dataset.get_batch(numpy.arange(len(dataset)))
    return list(texts)


class EncodedText(InMemoryDataset):
    """``dataset`` (texts) tokenized once with ``tokenizer.encode(text, max_length)``."""

    unit = "texts"

    def __init__(self, dataset, tokenizer, max_length: int | None):
        self.dataset, self.classes = dataset, dataset.classes
        self.name = getattr(dataset, "name", "texts")
        self.max_length, self.pad_id = max_length, tokenizer.pad_id
        self.sequences = [tokenizer.encode(t, max_length) for t in texts_of(dataset)]
        self.lengths = numpy.asarray([len(s) for s in self.sequences], dtype=numpy.int64)
        self.labels = numpy.asarray(dataset.targets, dtype=numpy.int64)
        self._tag = f"max_length={max_length};vocab={tokenizer.vocab_size}"

    def _sample(self, index):
        return self.sequences[index]

    def _gather(self, indices):
        """(input_ids, attention_mask), int64 (B, T) padded to the batch's longest text."""
        return pad_batch([self.sequences[i] for i in indices], self.pad_id)

    def truncated(self) -> int:
        """How many texts reached ``max_length`` (were, or may have been, truncated)."""
        return int((self.lengths >= self.max_length).sum()) if self.max_length else 0

    def fingerprint(self) -> str:
        """The texts' fingerprint and the tokenization settings (not cached: the texts' is)."""
        return hashlib.sha256(f"{self.dataset.fingerprint()};{self._tag}".encode()).hexdigest()
