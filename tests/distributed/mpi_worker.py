"""Run under ``mpiexec -n R``: data-parallel steps on fixed data; rank 0 writes the parameters.

    python mpi_worker.py MODEL OPTIMIZER STEPS GLOBAL_BATCH OUT.npz

MODEL: dense | cnn (a small CNN with BatchNorm in training mode).  Each rank takes its share
of every global batch (DataLoader's shard), averages gradients with DistributedOptimizer
(weighted by its example count) and, at the end, averages the BatchNorm running statistics.
N_EXAMPLES (optional, default STEPS·GLOBAL_BATCH) not a multiple of the batch makes the last
batch short and unevenly split.
Also used with a plain ``python`` (world of one) for the single-process run.
"""
from __future__ import annotations

import sys

import numpy

import minitl
import minitl.functional as F
from minitl import distributed, nn, optim
from minitl.data.loader import DataLoader


class Arrays:
    """Rows of x and y, batched by index (what DataLoader needs without a transform)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def get_batch(self, indices):
        return self.x[indices], self.y[indices]


def build(kind: str):
    minitl.manual_seed(0)
    if kind == "dense":
        return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 3 * 3, 3))


def data(kind: str, n: int):
    rng = numpy.random.default_rng(42)
    shape = (n, 12) if kind == "dense" else (n, 2, 6, 6)
    return rng.standard_normal(shape).astype(numpy.float32), rng.integers(0, 3, n)


def make_optimizer(name: str, params):
    if name == "sgd":
        return optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    return optim.AdamW(params, lr=0.01, weight_decay=0.01)


def main(kind, opt_name, steps, global_batch, out, n_examples=None):
    comm = distributed.world()
    model = build(kind)
    distributed.broadcast_module(model, comm)
    optimizer = distributed.DistributedOptimizer(make_optimizer(opt_name, model.parameters()), comm)
    x, y = data(kind, n_examples or steps * global_batch)
    loader = DataLoader(Arrays(x, y), batch_size=global_batch, shuffle=True, seed=7,
                        shard=(comm.rank, comm.size))
    loader.set_epoch(0)
    for xb, yb in loader:
        optimizer.zero_grad()
        if len(yb):
            F.cross_entropy(model(minitl.Tensor(xb)), yb).backward()
        optimizer.synchronize(weight=len(yb))
        optimizer.step()
    distributed.average_buffers(model, comm)
    if comm.is_root:
        numpy.savez(out, **{k: minitl.backend.to_numpy(v) for k, v in model.state_dict().items()})


if __name__ == "__main__":
    kind, opt_name, steps, batch, out = sys.argv[1:6]
    main(kind, opt_name, int(steps), int(batch), out, int(sys.argv[6]) if len(sys.argv) > 6 else None)
