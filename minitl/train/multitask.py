"""Training several tasks on one shared trunk: the epoch loop, checkpoints, resume, per-task metrics.

Inputs are arrays — cached backbone features, encoder embeddings, or raw pixels — and one int64
label array per task, where ``ignore_index`` (−1) marks an example without a label for that task.
Each step is :func:`minitl.train.conflict.multitask_step`:

    J = Σ_k λ_k L_k (or Σ_k exp(−s_k) L_k + s_k),  ∂J/∂w by back-propagation,  w ← w − η_t ∇J

with the gradient-conflict diagnostic (cos(g_a, g_b), ‖g_k‖) recorded for every step.  After each
epoch: per-task held-out loss and accuracy (over labelled examples), and a checkpoint written
atomically (weights, optimizer, RNG, history, step log; the one before is kept as checkpoint.prev.npz);
``resume=True`` continues from it — or, when it is damaged, from the one before, as every minitl
workflow does — and ends with the weights an uninterrupted run would have (each epoch's order depends
only on seed and epoch).

Fine-tuning a backbone: the shared trunk may expose ``backbone_parameters()`` (the unfrozen stages);
with ``backbone_lr`` set they train at that lower rate, everything else at ``lr``.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy

from .. import random as mt_random
from ..optim import SGD
from ..tensor import Tensor, no_grad
from .checkpoint import CheckpointError, load_latest_checkpoint, previous_path, save_checkpoint
from .conflict import LEVELS, multitask_step
from .progress import progress_bar


class MultiTaskDiverged(RuntimeError):
    """The joint loss became NaN or infinite."""


@dataclass
class TaskData:
    """x: (N, ...) inputs; targets: {task: (N,) int64 labels, −1 where a task has no label}."""

    x: object
    targets: dict
    classes: dict = field(default_factory=dict)  # {task: [class names]}

    def __post_init__(self):
        n = len(self.x)
        self.targets = {k: numpy.asarray(v, dtype=numpy.int64) for k, v in self.targets.items()}
        for name, y in self.targets.items():
            if y.shape != (n,):
                raise ValueError(f"task {name!r}: {y.shape[0] if y.ndim else 0} labels for {n} examples")

    def __len__(self) -> int:
        return len(self.x)

    def fingerprint(self) -> str:
        import hashlib  # noqa: PLC0415

        h = hashlib.sha256()
        h.update(numpy.ascontiguousarray(self.x).tobytes())
        for name in sorted(self.targets):
            h.update(name.encode() + self.targets[name].tobytes())
        return h.hexdigest()[:24]


@dataclass
class MultiTaskConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-2
    momentum: float = 0.9
    nesterov: bool = True
    decay: float = 1e-6
    weight_decay: float = 0.0
    seed: int = 0
    main: str | None = None  # the task the run is judged on (default: the first head)
    conflict: tuple = ("representation",)  # levels of the gradient-conflict diagnostic (see conflict.py)
    backbone_lr: float | None = None  # learning rate of the trunk's backbone_parameters() (fine-tuning)
    eval_batch_size: int = 512

    def check(self, tasks) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.backbone_lr is not None and not self.backbone_lr > 0:
            raise ValueError(f"backbone_lr must be positive, got {self.backbone_lr}")
        if self.main is not None and self.main not in tasks:
            raise ValueError(f"main task {self.main!r} is not one of the heads {list(tasks)}")
        unknown = set(self.conflict) - set(LEVELS)
        if unknown:
            raise ValueError(f"conflict levels must be among {', '.join(LEVELS)}; got {sorted(unknown)}")


def epoch_order(n: int, seed: int, epoch: int) -> numpy.ndarray:
    """The shuffled example order of one epoch: a function of (seed, epoch) only, so resume repeats it."""
    return numpy.random.default_rng([seed, epoch]).permutation(n)


def task_metrics(outputs: dict, targets: dict, ignore_index: int = -1) -> dict:
    """{task: {"accuracy", "loss", "labelled"}} over the examples labelled for each task (NumPy)."""
    metrics = {}
    for name, logits in outputs.items():
        y = numpy.asarray(targets[name])
        m = y != ignore_index
        if not m.any():
            metrics[name] = {"accuracy": None, "loss": None, "labelled": 0}
            continue
        z = logits[m].astype(numpy.float64)
        z = z - z.max(axis=1, keepdims=True)
        log_p = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
        rows = numpy.arange(int(m.sum()))
        metrics[name] = {"accuracy": float((z.argmax(axis=1) == y[m]).mean()),
                         "loss": float(-log_p[rows, y[m]].mean()), "labelled": int(m.sum())}
    return metrics


class MultiTaskTrainer:
    """Train a :class:`minitl.nn.MultiTask` on :class:`TaskData`; ``out_dir`` gets checkpoint.npz,
    run.json and plots (None: nothing written)."""

    def __init__(self, model, train: TaskData, test: TaskData, config: MultiTaskConfig, out_dir=None, log=None,
                 show_progress: bool = False, device=None, describe: dict | None = None):
        config.check(model.task_names)
        missing = [t for t in model.task_names if t not in train.targets or t not in test.targets]
        if missing:
            raise ValueError(f"no labels for task(s) {missing} in the training or held-out data")
        self.model, self.train_data, self.test_data, self.config = model, train, test, config
        self.main = config.main or model.task_names[0]
        self.out_dir = os.fspath(out_dir) if out_dir else None
        self.log = log or (lambda message: None)
        self.show_progress, self.device = show_progress, device
        self.describe = describe or {}

    def _tensor(self, array) -> Tensor:
        return Tensor(numpy.ascontiguousarray(array), device=self.device)

    def predict(self, data: TaskData) -> dict:
        """{task: logits (N, C) as NumPy} for every example of ``data``."""
        outputs = {name: [] for name in self.model.task_names}
        with self.model.evaluating(), no_grad():
            for start in range(0, len(data), self.config.eval_batch_size):
                batch = self.model(self._tensor(data.x[start:start + self.config.eval_batch_size]))
                for name, logits in batch.items():
                    outputs[name].append(logits.numpy())
        return {name: numpy.concatenate(parts) for name, parts in outputs.items()}

    def evaluate(self, data: TaskData) -> dict:
        return task_metrics(self.predict(data), data.targets, self.model.ignore_index)

    def param_groups(self) -> list:
        """[backbone parameters at backbone_lr, the rest at lr] when fine-tuning, else one group."""
        params = list(self.model.parameters())
        backbone = getattr(self.model.shared, "backbone_parameters", None)
        chosen = list(backbone()) if backbone is not None and self.config.backbone_lr is not None else []
        if not chosen:
            return [{"params": params, "lr": self.config.lr}]
        ids = {id(p) for p in chosen}
        return [{"params": chosen, "lr": self.config.backbone_lr},
                {"params": [p for p in params if id(p) not in ids], "lr": self.config.lr}]

    def _identity(self) -> dict:
        config = asdict(self.config)
        config.pop("eval_batch_size")
        return {"config": json.loads(json.dumps(config)), "train_data": self.train_data.fingerprint(),
                "tasks": self.model.task_names, "weighting": self.model.weighting}

    def _train_epoch(self, epoch: int, optimizer, steps: list) -> dict:
        c, data = self.config, self.train_data
        order = epoch_order(len(data), c.seed, epoch)
        batches = range(0, len(order), c.batch_size)
        bar = progress_bar(len(batches), desc=f"epoch {epoch + 1}/{c.epochs}", enabled=self.show_progress,
                           unit="batch")
        sums, seen = {}, 0
        try:
            for start in batches:
                rows = order[start:start + c.batch_size]
                targets = {name: self._tensor(y[rows]) for name, y in data.targets.items()
                           if name in self.model.heads}
                optimizer.zero_grad()
                result = multitask_step(self.model, self._tensor(data.x[rows]), targets, levels=c.conflict)
                if not math.isfinite(result.joint):
                    raise MultiTaskDiverged(f"joint loss is {result.joint} at epoch {epoch + 1}, step "
                                            f"{len(steps) + 1}: training stopped; try a lower learning rate")
                optimizer.step()
                steps.append({"step": len(steps) + 1, "epoch": epoch + 1, "joint": result.joint,
                              "losses": result.losses, **{level: result.conflict[level] for level in result.conflict}})
                for name, value in result.losses.items():
                    sums[name] = sums.get(name, 0.0) + value * len(rows)
                seen += len(rows)
                bar.update(1)
        finally:
            bar.close()
        return {name: total / max(seen, 1) for name, total in sums.items()}

    def fit(self, resume: bool = False, stop_after_epochs: int | None = None) -> dict | None:
        """Train every epoch; returns the result dict (also written to run.json)."""
        c = self.config
        path = os.path.join(self.out_dir, "checkpoint.npz") if self.out_dir else None
        history, steps, train_seconds, first_epoch = [], [], 0.0, 0
        optimizer = SGD(self.param_groups(), lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                        decay=c.decay, weight_decay=c.weight_decay)
        identity = self._identity()
        if resume:
            if path is None or not (os.path.isfile(path) or os.path.isfile(previous_path(path))):
                raise FileNotFoundError(f"--resume: no checkpoint at {path or '(no output folder given)'}")
            state, path = load_latest_checkpoint(path, log=self.log)
            if state["identity"] != identity:
                raise CheckpointError(f"{path} belongs to another run (different settings, data or tasks); "
                                      "start afresh without --resume or use another output folder")
            self.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            mt_random.set_state(state["rng"])
            history, steps, train_seconds, first_epoch = (state["history"], state["steps"], state["train_seconds"],
                                                          state["epoch"])
            self.log(f"resuming from {path}: {first_epoch} epoch(s) done")
        else:
            mt_random.manual_seed(c.seed)
        for epoch in range(first_epoch, c.epochs):
            began = time.perf_counter()
            self.model.train()
            train_losses = self._train_epoch(epoch, optimizer, steps)
            seconds = time.perf_counter() - began
            train_seconds += seconds
            held_out = self.evaluate(self.test_data)
            history.append({"epoch": epoch + 1, "train_loss": train_losses, "held_out": held_out,
                            "task_weights": self.model.task_weights(), "seconds": round(seconds, 3)})
            main = held_out[self.main]
            self.log(f"epoch {epoch + 1}/{c.epochs}: " + ", ".join(f"{k} loss {v:.4f}" for k, v in train_losses.items())
                     + f" | held-out {self.main} acc {main['accuracy']:.4f} | {seconds:.1f}s")
            if path:
                save_checkpoint(path, {"identity": identity, "epoch": epoch + 1, "model": self.model.state_dict(),
                                       "optimizer": optimizer.state_dict(), "rng": mt_random.get_state(),
                                       "history": history, "steps": steps, "train_seconds": train_seconds})
            if stop_after_epochs is not None and epoch + 1 - first_epoch >= stop_after_epochs:
                return None
        final = history[-1]["held_out"] if history else self.evaluate(self.test_data)
        result = {"main": self.main, "accuracy": final[self.main]["accuracy"], "tasks": self.model.task_names,
                  "held_out": final, "history": history, "steps": steps, "train_seconds": round(train_seconds, 3),
                  "config": asdict(self.config), "weighting": self.model.weighting, **self.describe}
        if self.out_dir:
            from .multitask_report import write_run  # noqa: PLC0415

            result["files"] = write_run(self.out_dir, result)
        return result
