"""``minitl demo``: a dense network learns real handwritten digits, in seconds.

The network is h_k = f_k(W_k h_{k−1} + b_k): 64 → 128 → 64 → 10 with ReLU, trained with
mini-batch SGD with momentum (w ← w − η ∂J/∂w, velocity μ = 0.9) on the cross-entropy of
its softmax, on scikit-learn's 8×8 digits (a seeded, stratified 75/25 split).
"""
from __future__ import annotations

import json
import sys
import time

import numpy

from .. import backend, nn, no_grad, optim
from .. import functional as F
from .. import random as mt_random
from ..tensor import Tensor
from ._common import add_device_argument, resolve_device


def build_mlp(sizes=(64, 128, 64, 10)) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (none after the last)."""
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def accuracy(model, images, labels, device, batch_size=512) -> float:
    """Fraction of images whose arg-max logit is the label (eval mode, no graph)."""
    model.eval()
    correct = 0
    with no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(Tensor(images[start:start + batch_size], device=device))
            predicted = backend.to_numpy(logits.data.argmax(axis=1))
            correct += int((predicted == labels[start:start + batch_size]).sum())
    return correct / max(len(images), 1)


def train_digits(epochs=20, seed=0, batch_size=32, lr=0.1, momentum=0.9, hidden=(128, 64), device="cpu",
                 log=None) -> dict:
    """Train the demo MLP; returns a summary dict (per-epoch loss/accuracies, final test accuracy, time)."""
    from ..data.digits import train_test_split_digits  # noqa: PLC0415 (needs scikit-learn's data file)

    (x_train, y_train), (x_test, y_test) = train_test_split_digits(test_fraction=0.25, seed=seed)
    mt_random.manual_seed(seed)
    sizes = (x_train.shape[1], *hidden, 10)
    model = build_mlp(sizes).to(device)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    shuffle = numpy.random.default_rng(seed)
    history = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        order = shuffle.permutation(len(x_train))
        losses = []
        for first in range(0, len(order), batch_size):
            batch = order[first:first + batch_size]
            x = Tensor(x_train[batch], device=device)
            y = Tensor(y_train[batch], device=device)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.data)  # stays on the device; read once per epoch
        mean_loss = float(backend.to_numpy(backend.get_array_module(losses[0]).stack(losses).mean()))
        row = {"epoch": epoch, "loss": mean_loss,
               "train_accuracy": accuracy(model, x_train, y_train, device),
               "test_accuracy": accuracy(model, x_test, y_test, device),
               "seconds": time.perf_counter() - start}
        history.append(row)
        if log is not None:
            log(f"epoch {epoch:3d}/{epochs}  loss {row['loss']:.4f}  train acc {row['train_accuracy']:.4f}  "
                f"test acc {row['test_accuracy']:.4f}  ({row['seconds']:.2f} s)")
    return {
        "dataset": "scikit-learn digits (8x8)",
        "train_size": int(len(x_train)), "test_size": int(len(x_test)),
        "model": "-".join(str(s) for s in sizes) + " MLP (ReLU)",
        "optimizer": f"SGD(lr={lr}, momentum={momentum}), batch {batch_size}",
        "seed": seed, "device": device,
        "epochs": history,
        "test_accuracy": history[-1]["test_accuracy"] if history else accuracy(model, x_test, y_test, device),
        "seconds": time.perf_counter() - start,
    }


def run(args) -> int:
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    device = resolve_device(args)
    log = None if args.json else print
    if log:
        print(f"minitl demo: a {'-'.join(map(str, (64, *args.hidden, 10)))} MLP learns scikit-learn's digits "
              f"with SGD (lr {args.lr}, momentum {args.momentum}), {args.epochs} epochs, seed {args.seed}, {device}")
    summary = train_digits(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                           momentum=args.momentum, hidden=tuple(args.hidden), device=device, log=log)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"final test accuracy: {summary['test_accuracy']:.4f} on {summary['test_size']} held-out images "
              f"({summary['seconds']:.1f} s)")
    sys.stdout.flush()
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="train a small dense network on scikit-learn's digits (seconds)",
        description="Train a 64-128-64-10 MLP with SGD + momentum on scikit-learn's handwritten digits "
                    "and report per-epoch loss and accuracy, then the held-out test accuracy.",
    )
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training set (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, the init and the shuffling")
    parser.add_argument("--batch-size", type=int, default=32, help="mini-batch size (default 32)")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate η (default 0.05)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum μ (default 0.9)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 64], help="hidden widths (default 128 64)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary instead of text")
    add_device_argument(parser)
    parser.set_defaults(handler=run)
