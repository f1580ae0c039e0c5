"""One epoch of head training on 60,000 cached feature vectors: minitl's trainer vs PyTorch (CPU).

The issue's target: with cached features, an epoch of head training on 60,000 feature vectors
takes under 1 s.  The vectors are 1024-wide (resnet50_1by2's pooled features; non-negative like
ReLU outputs, random: speed does not depend on the values); the head is Dense(512, ReLU) ->
Dense(10); SGD lr 0.001, momentum 0.9, Nesterov, decay 1e-6; shuffled mini-batches.

minitl runs the real code path (``minitl.train.loop.train_epoch`` as the Trainer calls it: DataLoader over
the cached features,
forward, cross-entropy, backward, SGD step, NaN check, running accuracy).  PyTorch runs the same
loop written plainly.  ``numpy-floor`` is the least any NumPy engine must do per step, written
bare: the shuffled gather, the two GEMMs of the wide layer (x·W₁ᵀ and dJ/dW₁ = gᵀx), ReLU and the
small second layer — no autograd, no optimizer state, no loss bookkeeping.  Each (round, batch
size, worker) is a separate process, workers alternated in order and reversed order, median of
the rounds; the ratios are minitl / torch and minitl / floor epoch time.

    python benchmarks/transfer_head.py                 # writes benchmarks/results/transfer_head.json
    python benchmarks/transfer_head.py --rounds 5 --batches 32,256
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from minitl.bench import harness

N, DIM, CLASSES = 60_000, 1024, 10
RESULTS = Path(__file__).resolve().parent / "results" / "transfer_head.json"


def _data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((N, DIM)).astype(np.float32), 0)
    y = rng.integers(0, CLASSES, N)
    return x, y


def _minitl_epoch(batch: int) -> float:
    import minitl
    from minitl.data import DataLoader
    from minitl.optim import SGD
    from minitl.train import FeatureDataset, TinyNet, TrainConfig, TransferModel
    from minitl.train.loop import to_tensor, train_epoch
    from minitl.train.plan import plan_phases

    x, y = _data()
    minitl.manual_seed(0)
    model = TransferModel(TinyNet(2, width=DIM), CLASSES)
    phase = plan_phases(TrainConfig(batch_size=batch), model)[0]  # the head on cached pooled features
    loader = DataLoader(FeatureDataset(x, y), batch_size=batch, shuffle=True, seed=phase.seed)  # as the Trainer's
    optimizer = SGD(model.head.parameters(), lr=1e-3, momentum=0.9, nesterov=True, decay=1e-6)
    model.train()

    def epoch(e):
        loader.set_epoch(e)
        train_epoch(model, phase, e, loader, optimizer, to_tensor, show_progress=False)

    epoch(0)  # warm-up epoch (allocations, BLAS threads)
    began = time.perf_counter()
    epoch(1)
    return time.perf_counter() - began


def _torch_epoch(batch: int) -> float:
    import numpy as np
    import torch

    x, y = _data()
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(DIM, 512), torch.nn.ReLU(), torch.nn.Linear(512, CLASSES))
    optimizer = torch.optim.SGD(head.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch(e):
        order = np.random.default_rng([0, e]).permutation(N)
        correct = 0
        for start in range(0, N, batch):
            idx = torch.from_numpy(order[start:start + batch])
            logits = head(xt[idx])
            loss = torch.nn.functional.cross_entropy(logits, yt[idx])
            if not torch.isfinite(loss):
                raise RuntimeError("nan")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += int((logits.argmax(1) == yt[idx]).sum())

    epoch(0)
    began = time.perf_counter()
    epoch(1)
    return time.perf_counter() - began


def _numpy_floor_epoch(batch: int) -> float:
    import numpy as np

    x, y = _data()
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((512, DIM)) * DIM ** -0.5).astype(np.float32)
    w2 = (rng.standard_normal((CLASSES, 512)) * 512 ** -0.5).astype(np.float32)

    def epoch(e):
        order = np.random.default_rng([0, e]).permutation(N)
        for start in range(0, N, batch):
            idx = order[start:start + batch]
            xb = x[idx]
            h = np.maximum(xb @ w1.T, 0)
            logits = h @ w2.T
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(idx)), y[idx]] -= 1  # dJ/dlogits of the mean cross-entropy, times the batch
            g = p / len(idx)
            gw2 = g.T @ h
            gh = (g @ w2) * (h > 0)
            gw1 = gh.T @ xb
            w1[...] -= 1e-3 * gw1  # plain SGD, in place: no momentum buffer
            w2[...] -= 1e-3 * gw2

    epoch(0)
    began = time.perf_counter()
    epoch(1)
    return time.perf_counter() - began


WORKERS = {"minitl": _minitl_epoch, "torch": _torch_epoch, "numpy-floor": _numpy_floor_epoch}


def _worker(framework: str, batch: int) -> None:
    seconds = WORKERS[framework](batch)
    print(json.dumps({"framework": framework, "batch": batch, "seconds": seconds}))


def _run_worker(framework, batch):
    return harness.run_worker([__file__, "--worker", framework, "--batch", batch]).last(framework)["seconds"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="32,256")
    parser.add_argument("--worker", choices=tuple(WORKERS))
    parser.add_argument("--batch", type=int)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.batch)
        return
    import minitl
    from minitl import backend

    batches = [int(b) for b in args.batches.split(",")]
    samples = {(f, b): [] for f in WORKERS for b in batches}
    for r in range(args.rounds):
        for b in batches:
            for framework in harness.alternated(WORKERS, r):
                samples[(framework, b)].append(_run_worker(framework, b))
                print(f"round {r + 1} batch {b} {framework}: {samples[(framework, b)][-1]:.3f}s", file=sys.stderr)
    rows = []
    for b in batches:
        m, t = harness.median(samples[("minitl", b)]), harness.median(samples[("torch", b)])
        floor = harness.median(samples[("numpy-floor", b)])
        rows.append({"batch": b, "minitl_s": round(m, 4), "torch_s": round(t, 4), "numpy_floor_s": round(floor, 4),
                     "minitl_over_torch": round(m / t, 3), "minitl_over_numpy_floor": round(m / floor, 3),
                     "target_under_1s": m < 1.0, "samples": {f: samples[(f, b)] for f in WORKERS}})
    result = {"benchmark": "head epoch on 60,000 cached 1024-d features", "rounds": args.rounds,
              "minitl": minitl.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
              "blas": backend.blas_info(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for row in rows:
        print(f"batch {row['batch']:>4}: minitl {row['minitl_s']:.3f}s  torch {row['torch_s']:.3f}s  "
              f"bare NumPy floor {row['numpy_floor_s']:.3f}s  minitl/torch {row['minitl_over_torch']:.2f}  "
              f"minitl/floor {row['minitl_over_numpy_floor']:.2f}  (<1 s: {row['target_under_1s']})")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
