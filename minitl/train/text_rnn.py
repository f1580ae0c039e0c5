"""A recurrent text classifier on the text workflow: word vectors -> BiLSTM -> pooled states -> head.

    e_t = E[w_t]                                   E: word vectors (``--weights glove`` | minilm-wordpiece |
                                                   a GloVe FILE.txt | an embeddings FILE.npz)
    p = [ mean_t h_t ; max_t h_t ]                 over the real words of BiLSTM(e_1 … e_T) (RNNEncoder)
    ŷ = W · dropout(p) + b                         the head

The three modes say what happens to E, the transferred part:

    features   E frozen: the pretrained vectors as fixed features (the BiLSTM and the head learn)
    finetune   E starts from the pretrained vectors and is trained with the rest
    scratch    E random, N(0, s²) with s the pretrained table's standard deviation, same vocabulary

Recipe, every mode (benchmarks/text_rnn.py's): Adam at ``--lr`` 2e-3 (constant), batch 32,
``--epochs`` 6, dropout 0.3 on the word vectors and on p, ``--hidden`` 64 per direction, texts cut
to ``--max-length`` 256 words; no weight decay, no clipping (``--weight-decay``, ``--clip`` to turn
them on).  Vocabulary: every word of the run's texts (training and held-out) that E knows —
the table keeps only those rows (rows never looked up are never read nor trained, so this
changes no result); other words are ``<unk>``; the run header counts them.  Batches, checkpoints,
``--resume``, the frozen-parameter check and run.json are the text Trainer's.
"""
from __future__ import annotations

import hashlib
import os
import time
from copy import copy

import numpy

from .. import nn
from .. import random as mt_random
from ..data.text import EncodedText, texts_of
from ..data.words import WordTokenizer
from ..models.rnn_classifier import RNNEncoder
from ..optim import Adam
from .model import TransferModel
from .plan import Phase
from .text import StepOptimizer, TextHead, TextSpec, TextTrainer
from .text_workflow import RNN_CLASSIFIER_FORMAT, resolve_text_data, tfidf_baseline

ARCHS = {"bilstm": "lstm", "bigru": "gru"}
EMBEDDING_NAMES = ("glove", "glove-6b-50d", "minilm-wordpiece")
# the recipe's settings (option destination -> value) where they differ from the BERT text recipe's
RNN_DEFAULTS = {"epochs": 6, "lr": 2e-3, "batch_size": 32, "clip": 0.0, "weight_decay": 0.0, "warmup": 0.0,
                "max_length": 256, "hidden": 64}
DROPOUT = 0.3


def is_rnn_job(arch=None, weights=None) -> bool:
    """``--arch bilstm|bigru``, or ``--weights`` naming word embeddings (glove, minilm-wordpiece)."""
    return str(arch or "").lower() in ARCHS or str(weights or "").lower() in EMBEDDING_NAMES


def describe_recipe(config, arch: str, hidden: int) -> str:
    what = {"features": "frozen word vectors", "finetune": "word vectors fine-tuned",
            "scratch": "random word vectors"}.get(config.mode, config.mode)
    return (f"text run: {arch} (hidden {hidden}/direction, mean+max pooling, dropout {DROPOUT}), mode "
            f"{config.mode} ({what}); Adam lr {config.lr:g}, batch {config.batch_size}, {config.epochs} epoch(s), "
            f"max length {config.max_length} words, weight decay {config.weight_decay:g}, clip {config.clip:g}")


class RNNTextModel(TransferModel):
    """Two segments, ``embedding`` ((ids, mask) -> (E[ids], mask)) and ``rnn`` (-> p), and the head."""

    def __init__(self, encoder: RNNEncoder, num_classes: int, dropout: float = DROPOUT):
        nn.Module.__init__(self)
        self.backbone = encoder
        object.__setattr__(self, "segments", [("embedding", encoder.embed), ("rnn", encoder.encode)])
        self.head = TextHead(encoder.num_features, num_classes, dropout)
        self.head.fc = nn.Linear(encoder.num_features, num_classes)  # RNNClassifier's initialisation

    @property
    def stage_names(self) -> list[str]:
        return ["embedding", "rnn"]


class RNNTextTrainer(TextTrainer):
    """One phase: from segment ``rnn`` (features: E frozen, run without a graph) or from the embedding."""

    def plan(self) -> list[Phase]:
        c, model = self.config, self.model
        encoder = model.backbone
        if c.mode == "features":
            groups = [("rnn", [encoder.rnn], c.lr), ("head", [model.head], c.lr)]
            return [Phase("frozen-embeddings", 1, c.epochs, groups, cached=False, bn_train=True, seed=c.seed)]
        groups = [("embedding", [encoder.embedding], c.lr), ("rnn", [encoder.rnn], c.lr), ("head", [model.head], c.lr)]
        return [Phase(c.mode, 0, c.epochs, groups, cached=False, bn_train=True, seed=c.seed)]

    def make_optimizer(self, phase: Phase) -> StepOptimizer:
        groups = [{"params": [p for m in modules for p in m.parameters()], "lr": lr} for _, modules, lr in phase.groups]
        return StepOptimizer(Adam(groups, lr=self.config.lr, weight_decay=self.config.weight_decay),
                             clip=self.config.clip)


def prepare(job, config, log=print, splits=None):
    """(splits, tokenizer, table, embeddings): the data, the word tokenizer over the words of its texts
    that the embedding knows, and their rows of the embedding ((V, D), rows 0/1 = <pad>/<unk> = 0)."""
    from ..transfer.embeddings import embedding_matrix, load_embeddings  # noqa: PLC0415

    splits = splits or resolve_text_data(job, log)
    embeddings = load_embeddings(job.weights or "glove")
    texts = texts_of(splits.train) + texts_of(splits.test)
    tokenizer, rows = WordTokenizer.for_corpus(embeddings.words, texts, lowercase=embeddings.lowercase,
                                               max_length=config.max_length)
    if len(rows) == 0:
        raise ValueError(f"none of the texts' words is in the vocabulary of {embeddings.name}")
    log(f"embeddings: {embeddings.name}, {len(embeddings):,} words × {embeddings.dim}; {len(rows):,} of them occur "
        "in the texts (the table keeps those)")
    return splits, tokenizer, embedding_matrix(embeddings, rows), embeddings


def build_rnn_model(table, mode: str, arch: str, hidden: int, num_classes: int, seed: int) -> RNNTextModel:
    """The model of ``mode`` (see the module docstring); its initial weights depend only on ``seed``."""
    mt_random.manual_seed(seed)
    start = table
    if mode == "scratch":
        start = numpy.random.default_rng(seed).normal(0.0, float(table[2:].std()), size=table.shape)
        start = start.astype(numpy.float32)
        start[0] = 0.0
    encoder = RNNEncoder(embeddings=start, freeze_embeddings=(mode == "features"), hidden_size=hidden,
                         cell=ARCHS[arch], dropout=DROPOUT)
    return RNNTextModel(encoder, num_classes, DROPOUT)


def encode_words(splits, tokenizer, max_length: int, log=print):
    """The splits tokenized once; logs lengths and the out-of-vocabulary counts of each split."""
    encoded = copy(splits)
    began, counts = time.perf_counter(), {}
    for name in ("train", "test"):
        tokenizer.counts.clear()
        setattr(encoded, name, EncodedText(getattr(splits, name), tokenizer, max_length))
        counts[name] = tokenizer.describe_oov()
    encoded.unit = "texts"
    lengths = numpy.concatenate([encoded.train.lengths, encoded.test.lengths])
    log(f"tokenized {len(lengths)} texts in {time.perf_counter() - began:.1f}s: median {numpy.median(lengths):.0f} "
        f"words, {int((lengths >= max_length).sum())} cut at --max-length {max_length}")
    log(f"out of vocabulary (<unk>): training texts {counts['train']}; held-out texts {counts['test']}")
    return encoded, counts


def rnn_spec(tokenizer, embeddings, max_length: int) -> TextSpec:
    digest = hashlib.sha256("\n".join(tokenizer.words).encode()).hexdigest()[:16]
    return TextSpec(f"words ({embeddings.name}) vocab sha256:{digest}", tokenizer.vocab_size, max_length, "meanmax")


def rnn_finetune(job, config, out_dir, model_path=None, resume: bool = False, show_progress=True, log=print,
                 prepared=None):
    """Train one mode of the recurrent classifier; save it; returns (RunResult, model path)."""
    splits, tokenizer, table, embeddings = prepared or prepare(job, config, log)
    arch = str(job.arch or "bilstm").lower()
    model = build_rnn_model(table, config.mode, arch, job.hidden, len(splits.classes), config.seed)
    if job.device:
        model.to(job.device)
    encoded, oov = encode_words(splits, tokenizer, config.max_length, log)
    trainer = RNNTextTrainer(model, encoded, rnn_spec(tokenizer, embeddings, config.max_length), config,
                             out_dir=out_dir, cache_dir=job.cache_dir, show_progress=show_progress, log=log,
                             device=job.device)
    result = trainer.fit(resume=resume)
    model_path = model_path or os.path.join(out_dir, "model.npz")
    save_rnn_classifier(model_path, model, splits.classes, tokenizer, config, arch,
                        {"mode": config.mode, "test_accuracy": result.accuracy, "embeddings": embeddings.name,
                         "out_of_vocabulary": oov, "data": splits.describe(), "split": getattr(splits, "source", None)})
    result.files["model"] = model_path
    log(f"saved {model_path}")
    return result, model_path


def rnn_compare(job, config, out_dir, modes=("scratch", "features", "finetune", "tfidf"), show_progress=True,
                log=print):
    """Every mode on the same split, words and table (+ the TF-IDF baseline): (rows, verdict, files, splits)."""
    from dataclasses import replace  # noqa: PLC0415

    from .metrics import plot_comparison  # noqa: PLC0415

    prepared = prepare(job, config, log)
    rows = []
    for mode in modes:
        log(f"=== {mode} ===")
        began = time.perf_counter()
        if mode == "tfidf":
            row = tfidf_baseline(prepared[0], log)
        else:
            result, path = rnn_finetune(job, replace(config, mode=mode), os.path.join(out_dir, mode),
                                        show_progress=show_progress, log=log, prepared=prepared)
            row = {"mode": mode, "accuracy": result.accuracy, "train_seconds": result.train_seconds,
                   "extract_seconds": 0.0, "cache_hit": False, "time_seconds": result.train_seconds,
                   "eval_seconds": result.eval_seconds, "epochs": result.epochs_run, "model": path}
        row["wall_seconds"] = round(time.perf_counter() - began, 3)
        rows.append(row)
    files = {}
    png = plot_comparison(rows, os.path.join(out_dir, "compare.png"))
    if png:
        files["plot"] = png
    return rows, rnn_verdict({r["mode"]: 100 * r["accuracy"] for r in rows}, prepared[3].name), files, prepared[0]


def rnn_verdict(pct: dict, name: str) -> list:
    """Plain sentences: pretrained vs random word vectors, and each against the TF-IDF baseline."""
    lines = []
    label = {"features": f"frozen {name}", "finetune": f"fine-tuned {name}", "scratch": "random word vectors"}
    for mode in ("features", "finetune"):
        if mode in pct and "scratch" in pct:
            gain = pct[mode] - pct["scratch"]
            lines.append(f"{label[mode]} ({mode}) {'beats' if gain > 0 else 'does not beat'} random word vectors "
                         f"(scratch): {pct[mode]:.1f}% vs {pct['scratch']:.1f}% ({gain:+.1f} points, one seed)")
    if "tfidf" in pct:
        for mode in ("finetune", "features", "scratch"):
            if mode in pct:
                lines.append(f"{mode} vs the TF-IDF baseline: {pct[mode]:.1f}% vs {pct['tfidf']:.1f}% "
                             f"({pct[mode] - pct['tfidf']:+.1f} points)")
    return lines


# ============================================================================ the saved classifier
def save_rnn_classifier(path, model: RNNTextModel, classes, tokenizer, config, arch: str, extra=None) -> str:
    """One .npz: the arrays + JSON metadata (architecture, the words of the table, max length, classes)."""
    from ..transfer import npz  # noqa: PLC0415

    encoder = model.backbone
    metadata = {"format": RNN_CLASSIFIER_FORMAT, "arch": arch, "hidden": encoder.rnn.hidden_size,
                "rnn_pooling": encoder.pooling, "dropout": DROPOUT, "embedding_dim": encoder.embedding.embedding_dim,
                "words": tokenizer.words[2:], "lowercase": tokenizer.lowercase, "max_length": config.max_length,
                "classes": list(classes), "num_classes": len(classes), **(extra or {})}
    return npz.write(path, model.state_dict(), metadata)


def rnn_classifier_from(state, meta):
    """(RNNTextModel in eval mode, classes, tokenizer, metadata) from a saved file's arrays and metadata."""
    tokenizer = WordTokenizer(meta["words"], lowercase=meta["lowercase"], max_length=meta["max_length"])
    encoder = RNNEncoder(tokenizer.vocab_size, meta["embedding_dim"], hidden_size=meta["hidden"],
                         cell=ARCHS[meta["arch"]], pooling=meta["rnn_pooling"], dropout=meta["dropout"])
    model = RNNTextModel(encoder, meta["num_classes"], meta["dropout"])
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta["classes"], tokenizer, meta
