"""The trainer: scratch, features and finetune on one code path.

A run is a list of *phases*.  A phase trains the network from segment ``cut`` on — the
segments before it are frozen and either read from the feature cache or run without a graph —
with its own optimizer (parameter groups, each with its learning rate):

    scratch    [scratch: cut 0, everything, BatchNorm in training mode]
    features   [head: cut = all segments, the head on cached pooled features]
    finetune   [head: as above,  finetune: cut = start of the last N stages, those stages at a
                lower learning rate and the head, BatchNorm kept in inference mode]

Each step is the textbook loop: ŷ = f(x), J = cross-entropy(ŷ, y), ∂J/∂w by back-propagation,
w ← w − η_t (momentum, Nesterov) with Keras' time-based decay η_t = η / (1 + decay · t).

After every epoch a checkpoint (weights, optimizer state, RNG state, history, position) is
written atomically; ``resume=True`` continues from it and ends with the weights an
uninterrupted run would have.  A NaN/Inf loss stops the run (the last good checkpoint stays).
Guardrails: a warning when a frozen part still has BatchNorm in training mode, and a check that
every frozen parameter and buffer is bitwise unchanged at the end of each phase.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy

from .. import functional as F
from .. import random as mt_random
from ..data.datasets import stratified_subset
from ..data.loader import DataLoader
from ..data.datasets import MirroredDataset, stratified_indices
from ..data.transforms import Compose, ImagePipeline, RandomHorizontalFlip, augmentation
from ..optim import SGD
from ..tensor import Tensor, no_grad
from ..transfer.npz import atomic_write
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .features import FeatureCache, FeatureDataset, cache_key, extract
from .metrics import accuracy, confusion_matrix, per_class_accuracy, plot_confusion, plot_learning_curves
from .model import TransferModel, batchnorm_modules, set_trainable, state_digest, weights_digest
from .progress import progress_bar

MODES = ("scratch", "features", "finetune")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and which checkpoint is the last good one."""


class FrozenParameterChanged(RuntimeError):
    """A parameter that should have been frozen moved during training."""


def to_tensor(array, device=None) -> Tensor:
    """The one place a NumPy batch becomes a Tensor (and, with ``device``, moves to the GPU)."""
    return Tensor(numpy.ascontiguousarray(array), device=device)


@dataclass
class TrainConfig:
    mode: str = "features"
    epochs: int = 30  # scratch: all epochs; features / finetune: epochs of the head phase (cheap when cached)
    finetune_epochs: int = 6  # finetune: epochs with the last stages unfrozen
    unfreeze: int = 2  # finetune: how many of the backbone's last stages to unfreeze (layer3, layer4)
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 1e-3  # SGD(lr=0.001, momentum=0.9, nesterov=True, decay=1e-6): the recipe
    # the unfrozen stages' learning rate: 1/100 of the 0.1 ResNets are pretrained with.  The classic 1e-4
    # barely moved the pretrained stages in the budget measured here (see the README's transfer figures)
    finetune_lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    decay: float = 1e-6
    weight_decay: float = 0.0
    flip: bool = True  # mirror images: cached phases store every training image and its mirror,
    #                    image phases flip at random (the recipe's horizontal flip, kept when caching)
    augment: bool = False  # recipe augmentation (flip, shear 0.2, zoom 0.2): images every epoch, no cache
    shear: float = 0.2
    zoom: float = 0.2
    hflip: bool = True
    crop_padding: int = 0
    seed: int = 0
    freeze_bn: bool = True  # BatchNorm of the pretrained backbone in inference mode (not in scratch)
    time_budget: float | None = None  # seconds of training; stops mid-epoch when spent
    epoch_eval_size: int = 500  # per-epoch held-out check on at most this many images when not cached
    prefetch: int = 2
    cache: bool = True

    def check(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.finetune_epochs < 0 or self.unfreeze < 0:
            raise ValueError("finetune_epochs and unfreeze must be >= 0")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class Phase:
    name: str
    cut: int  # first trained segment
    epochs: int
    groups: list  # [(label, modules, lr)]
    cached: bool  # inputs from the feature cache (else images every epoch)
    bn_train: bool  # BatchNorm of the backbone in training mode?
    seed: int = 0


@dataclass
class RunResult:
    mode: str
    accuracy: float
    confusion: list
    classes: list
    history: list
    train_seconds: float
    extract_seconds: float  # feature extraction of the training split in this run (0 on a cache hit)
    extract_seconds_uncached: float  # what that extraction costs without the cache
    eval_seconds: float
    epochs_run: int
    stopped_by_budget: bool
    cache: dict
    frozen_check: str
    files: dict = field(default_factory=dict)
    per_class_accuracy: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class Trainer:
    """Train ``model`` (a :class:`TransferModel`) on ``splits`` (a ``DataSplits``: train, test, classes).

    spec: the backbone's :class:`PreprocessSpec`;  out_dir: checkpoint, run log, plots (None:
    nothing written);  weights_id: identity of the pretrained weights for the cache key (default:
    a digest of the backbone's arrays);  log: a function taking one line of text.
    """

    def __init__(self, model: TransferModel, splits, spec, config: TrainConfig, out_dir=None, cache_dir=None,
                 show_progress: bool = True, log=None, device=None, weights_id: str | None = None):
        config.check()
        self.model, self.splits, self.spec, self.config = model, splits, spec, config
        self.out_dir = os.fspath(out_dir) if out_dir else None
        self.cache = FeatureCache(cache_dir, enabled=config.cache)
        self.show_progress, self.device = show_progress, device
        self.log = log or (lambda message: None)
        self._weights_id = weights_id
        self.plain = ImagePipeline(spec)
        if config.augment:
            train_augment = augmentation(config.hflip, config.shear, config.zoom, config.crop_padding)
        elif config.flip:
            train_augment = Compose([RandomHorizontalFlip(0.5)])
        else:
            train_augment = None
        self.augmented = ImagePipeline(spec, train_augment) if train_augment is not None else self.plain
        self._features: dict = {}  # (split, cut) -> FeatureDataset
        self.cache_report: dict = {}
        self.extract_seconds = 0.0
        self.eval_extract_seconds = 0.0
        self.cold_extract_seconds = 0.0  # what extraction of the training split costs without the cache
        self._cold: dict = {}  # (split, cut) -> seconds to compute that cache entry from the images

    # ------------------------------------------------------------------ plan
    @property
    def weights_id(self) -> str:
        if self._weights_id is None:
            self._weights_id = weights_digest(self.model.backbone)
        return self._weights_id

    def plan(self) -> list[Phase]:
        c, model = self.config, self.model
        n = len(model.segments)
        head = ("head", [model.head], c.lr)
        if c.mode == "scratch":
            everything = ("network", model.segment_modules(0) + [model.head], c.lr)
            return [Phase("scratch", 0, c.epochs, [everything], cached=False, bn_train=True, seed=c.seed)]
        phases = [Phase("head", n, c.epochs, [head], cached=not c.augment, bn_train=not c.freeze_bn, seed=c.seed)]
        if c.mode == "finetune" and c.finetune_epochs > 0:
            if c.unfreeze < 1:
                raise ValueError("finetune needs unfreeze >= 1 (the number of last stages to train)")
            cut = model.cut_for(c.unfreeze)
            stages = ("stages " + ",".join(model.segment_names[cut:]), model.segment_modules(cut), c.finetune_lr)
            phases.append(Phase("finetune", cut, c.finetune_epochs, [stages, head], cached=not c.augment,
                                bn_train=not c.freeze_bn, seed=c.seed + 1))
        return phases

    # ------------------------------------------------------------------ data
    def _tensor(self, array):
        return to_tensor(array, self.device)

    def _image_loader(self, dataset, train: bool, seed: int, batch_size: int):
        transform = self.augmented if train else self.plain
        return DataLoader(dataset, batch_size=batch_size, shuffle=train, transform=transform, seed=seed,
                          prefetch=self.config.prefetch)

    def _cache_parts(self, split: str, dataset, cut: int, pooled: bool) -> dict:
        return dict(weights=self.weights_id, data=dataset.fingerprint(), preprocessing=self.plain.config(),
                    cut=cut, segments=self.model.segment_names[:cut], pooled=pooled, split=split,
                    dtype="float32", version=1)

    def features(self, split: str, cut: int) -> FeatureDataset:
        """Activations at the input of segment ``cut`` (pooled when cut = all segments) for a split,
        from memory, the disk cache, a smaller cut's cache, or the images — in that order."""
        if (split, cut) in self._features:
            return self._features[(split, cut)]
        dataset = self.splits.train if split == "train" else self.splits.test
        if split == "train" and self.config.flip:
            dataset = MirroredDataset(dataset)  # each training image and its mirror, extracted once
        pooled = cut == len(self.model.segments)
        parts = self._cache_parts(split, dataset, cut, pooled)
        key = cache_key(**parts)
        hit = self.cache.load(key)
        if hit is not None:
            self.cache_report[f"{split}@{cut}"] = {"hit": True, "key": key, "shape": list(hit[0].shape)}
            self.log(f"feature cache hit: {split} split at '{self._cut_name(cut)}' {tuple(hit[0].shape)} "
                     f"({self.cache.paths(key)[0]})")
            result = FeatureDataset(hit[0], hit[1], dataset.classes)
            description = self.cache.description(key)
            cold = float(description.get("seconds_from_images", description.get("seconds", 0.0)))
            self.cache_report[f"{split}@{cut}"]["seconds_from_images"] = cold
        else:
            lower = [k for (s, k) in self._features if s == split and k < cut]
            if lower:
                start = max(lower)
                source = self._features[(split, start)]
            else:
                start = 0
                source = self._image_loader(dataset, train=False, seed=0, batch_size=self.config.eval_batch_size)
            holder = {}

            def allocate(shape, dtype):
                if not self.cache.enabled:
                    return numpy.empty(shape, dtype=dtype)
                array, commit, abort = self.cache.writer(key, shape, dtype, parts)
                holder.update(commit=commit, abort=abort)
                return array

            self.log(f"extracting features: {split} split ({len(dataset)} images) through "
                     f"{', '.join(self.model.segment_names[start:cut])}")
            try:
                rows, labels, seconds = extract(
                    self.model, source, start, cut, self.config.eval_batch_size, self._tensor, pool=pooled,
                    desc=f"features {split}", show_progress=self.show_progress, allocate=allocate,
                    prefetch=self.config.prefetch)
            except BaseException:
                if "abort" in holder:
                    holder["abort"]()
                raise
            if split == "train":  # extraction of the training split is training time
                self.extract_seconds += seconds
            else:  # the held-out split's is evaluation time (scratch evaluates through the network too)
                self.eval_extract_seconds += seconds
            # what this entry costs from the images: its own time plus that of the cache it started from
            cold = seconds + (self._cold.get((split, start), 0.0) if start else 0.0)
            if "commit" in holder:
                holder["commit"](labels, {"seconds": seconds, "seconds_from_images": cold, "images": int(len(labels))})
                rows = self.cache.load(key)[0]
            self.cache_report[f"{split}@{cut}"] = {"hit": False, "key": key, "shape": list(rows.shape),
                                                   "seconds": round(seconds, 3),
                                                   "images_per_s": round(len(labels) / seconds, 2) if seconds else None}
            self.log(f"  {len(labels)} x {tuple(rows.shape[1:])} in {seconds:.1f}s "
                     f"({len(labels) / max(seconds, 1e-9):.1f} img/s)"
                     + (f", cached as {self.cache.paths(key)[0]}" if self.cache.enabled else ""))
            result = FeatureDataset(rows, labels, dataset.classes)
        self._features[(split, cut)] = result
        self._cold[(split, cut)] = cold
        if split == "train":  # an uncached run computes the deepest cache it needs from the images once
            self.cold_extract_seconds = max(self.cold_extract_seconds, cold)
        return result

    def _cut_name(self, cut: int) -> str:
        names = self.model.segment_names
        return "pooled features" if cut == len(names) else f"input of {names[cut]}"

    # ------------------------------------------------------------------ modes
    def _set_modes(self, phase: Phase, frozen_modules) -> None:
        model = self.model
        model.train()
        if not phase.bn_train:
            for bn in batchnorm_modules([model.backbone]):
                bn.eval()
        frozen_bn_training = [bn for bn in batchnorm_modules(frozen_modules) if bn.training]
        if frozen_bn_training:
            warnings.warn(
                f"the frozen part of the backbone has {len(frozen_bn_training)} BatchNorm layer(s) in training "
                "mode: they normalise with batch statistics and update their running statistics, so the "
                "'frozen' features change; keep them in inference mode (freeze_bn=True, the default)",
                RuntimeWarning, stacklevel=3,
            )

    def _frozen_state(self, trainable_modules):
        """Arrays that must not move in this phase: every parameter outside the trained modules and,
        with BatchNorm in inference mode, every buffer of the backbone (running statistics)."""
        trainable = {id(p) for m in trainable_modules for p in m.parameters()}
        named = [(n, p) for n, p in self.model.named_parameters() if id(p) not in trainable]
        if self.config.mode != "scratch" and self.config.freeze_bn:
            named += list(self.model.backbone.named_buffers(prefix="backbone"))
        return named

    # ------------------------------------------------------------------ one epoch
    def _batches(self, phase: Phase, epoch: int):
        if phase.cached:
            loader = DataLoader(self.features("train", phase.cut), batch_size=self.config.batch_size, shuffle=True,
                                seed=phase.seed)
        else:
            loader = self._image_loader(self.splits.train, train=True, seed=phase.seed,
                                        batch_size=self.config.batch_size)
        loader.set_epoch(epoch)
        return loader

    def _logits(self, phase: Phase, x: Tensor, cached: bool) -> Tensor:
        if cached or phase.cut == 0:
            return self.model.forward_from(x, phase.cut)
        with no_grad():  # the frozen prefix: no graph, no cost beyond the forward pass
            h = self.model.run_segments(x, 0, phase.cut)
        return self.model.forward_from(h, phase.cut)

    def _train_epoch(self, phase: Phase, epoch: int, optimizer, where: str, deadline: float | None):
        loader = self._batches(phase, epoch)
        bar = progress_bar(len(loader), desc=f"{phase.name} epoch {epoch + 1}/{phase.epochs}",
                           enabled=self.show_progress, unit="batch")
        total_loss, correct, seen, out_of_time = 0.0, 0, 0, False
        for b, (x, y) in enumerate(loader):
            logits = self._logits(phase, self._tensor(x), phase.cached)
            target = self._tensor(y)
            loss = F.cross_entropy(logits, target)
            # one device->host read per step (on a GPU each read waits for the device): loss and hits together
            hits = (logits.data.argmax(axis=1) == target.data).sum()
            both = logits.xp.stack([loss.data.astype(numpy.float64), hits.astype(numpy.float64)])
            value, batch_correct = Tensor(both).numpy().tolist()
            if not math.isfinite(value):
                bar.close()
                raise TrainingDiverged(
                    f"loss is {value} at {phase.name} epoch {epoch + 1}, batch {b + 1}: training stopped. "
                    f"{where} Try a lower learning rate (--lr / --finetune-lr).")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += value * len(y)
            correct += int(batch_correct)
            seen += len(y)
            bar.update(1)
            bar.set_postfix_str(f"loss {total_loss / seen:.4f} acc {correct / seen:.3f}")
            if deadline is not None and time.perf_counter() >= deadline:
                out_of_time = True
                break
        bar.close()
        return total_loss / max(seen, 1), correct / max(seen, 1), out_of_time

    # ------------------------------------------------------------------ evaluation
    def _eval_source(self, phase: Phase | None, full: bool):
        """(FeatureDataset or image dataset, start segment) for evaluating on the held-out split."""
        if phase is not None and phase.cached:
            cached = self.features("test", phase.cut)
            if full or phase.cut == len(self.model.segments) or len(cached) <= self.config.epoch_eval_size:
                return cached, phase.cut  # pooled features: the head alone, the whole split is cheap
            key = ("test-subset", phase.cut)
            if key not in self._features:
                per_class = max(1, self.config.epoch_eval_size // max(1, len(self.splits.classes)))
                try:
                    rows = stratified_indices(cached.labels, per_class=per_class, seed=self.config.seed + 7)
                except ValueError:
                    rows = numpy.arange(len(cached))
                self._features[key] = FeatureDataset(cached.features[rows], cached.labels[rows], cached.classes)
            return self._features[key], phase.cut
        test = self.splits.test
        if not full and len(test) > self.config.epoch_eval_size:
            per_class = max(1, self.config.epoch_eval_size // max(1, len(self.splits.classes)))
            try:
                test = stratified_subset(test, per_class, seed=self.config.seed + 7)
            except ValueError:
                pass
        return test, 0

    def predict_logits(self, source, start: int, desc: str = "evaluate"):
        """Logits (N, C) and labels for a FeatureDataset at ``start`` or an image dataset (start 0)."""
        if isinstance(source, FeatureDataset):
            loader = DataLoader(source, batch_size=max(self.config.eval_batch_size, 256))
        else:
            loader = self._image_loader(source, train=False, seed=0, batch_size=self.config.eval_batch_size)
        loader.set_epoch(0)
        outputs, labels = [], []
        bar = progress_bar(len(loader.dataset), desc=desc, enabled=self.show_progress, unit="img")
        try:
            with self.model.evaluating(), no_grad():
                for x, y in loader:
                    outputs.append(self.model.forward_from(self._tensor(x), start).numpy())
                    labels.append(numpy.asarray(y))
                    bar.update(len(y))
        finally:
            bar.close()
        return numpy.concatenate(outputs), numpy.concatenate(labels)

    def _evaluate(self, phase, full: bool, desc: str):
        source, start = self._eval_source(phase, full)
        logits, labels = self.predict_logits(source, start, desc)
        z = logits - logits.max(axis=1, keepdims=True)
        log_p = z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))
        loss = float(-log_p[numpy.arange(len(labels)), labels].mean())
        return loss, accuracy(labels, logits.argmax(axis=1)), logits, labels

    # ------------------------------------------------------------------ the run
    def _checkpoint_path(self):
        return os.path.join(self.out_dir, "checkpoint.npz") if self.out_dir else None

    def _identity(self) -> dict:
        c = asdict(self.config)
        for volatile in ("prefetch", "time_budget", "cache", "eval_batch_size", "epoch_eval_size"):
            c.pop(volatile)
        return {"config": c, "train_data": self.splits.train.fingerprint(), "classes": list(self.splits.classes),
                "segments": self.model.segment_names}

    def fit(self, resume: bool = False, stop_after_epochs: int | None = None) -> RunResult:
        """Run every phase; ``resume`` continues from ``out_dir/checkpoint.npz``.
        ``stop_after_epochs`` ends the run early after that many epochs (as a kill would; for tests)."""
        c = self.config
        phases = self.plan()
        history: list[dict] = []
        start_phase, start_epoch, saved_optimizer = 0, 0, None
        train_seconds = 0.0
        path = self._checkpoint_path()
        identity = self._identity()
        _ = self.weights_id  # the pretrained weights' digest (cache key), taken before any checkpoint loads
        if resume:
            if path is None or not os.path.isfile(path):
                raise FileNotFoundError(f"--resume: no checkpoint at {path or '(no output folder given)'}")
            state = load_checkpoint(path)
            if state["identity"] != json.loads(json.dumps(identity)):
                raise CheckpointError(
                    f"{path} belongs to another run (different settings, data or network); "
                    "start afresh without --resume or use another output folder")
            self.model.load_state_dict(state["model"])
            mt_random.set_state(state["rng"])
            history, train_seconds = state["history"], state["train_seconds"]
            start_phase, start_epoch = state["phase"], state["epoch"]
            saved_optimizer = state["optimizer"]
            self.log(f"resuming from {path}: phase {phases[start_phase].name if start_phase < len(phases) else 'done'}, "
                     f"{start_epoch} epoch(s) done")
        else:
            mt_random.manual_seed(c.seed)
        run_began = time.perf_counter()
        deadline_base = c.time_budget
        stopped_by_budget, epochs_run, frozen_checks = False, 0, []
        # finetune: extract once at the lowest cut; the pooled features are computed from it
        lowest_cut = min(p.cut for p in phases) if len(phases) > 1 and all(p.cached for p in phases) else None
        for p_index in range(start_phase, len(phases)):
            phase = phases[p_index]
            trainable = [m for _, modules, _ in phase.groups for m in modules]
            _, frozen = set_trainable(self.model, phase.cut)
            self._set_modes(phase, frozen)
            frozen_named = self._frozen_state(trainable)
            before = state_digest(frozen_named)
            groups = [{"params": [p for m in modules for p in m.parameters()], "lr": lr} for _, modules, lr in phase.groups]
            optimizer = SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, decay=c.decay,
                            weight_decay=c.weight_decay)
            first_epoch = start_epoch if p_index == start_phase else 0
            if saved_optimizer is not None and p_index == start_phase and first_epoch > 0:
                optimizer.load_state_dict(saved_optimizer)
            if phase.cached:  # extraction happens before the clock of the epochs starts; it is timed apart
                if lowest_cut is not None:
                    for split in ("train", "test"):
                        self.features(split, lowest_cut)
                self.features("train", phase.cut)
                self.features("test", phase.cut)
            self.log(f"phase '{phase.name}': training {', '.join(label for label, _, _ in phase.groups)} "
                     f"(lr {', '.join(f'{lr:g}' for _, _, lr in phase.groups)}); "
                     f"{'cached ' + self._cut_name(phase.cut) if phase.cached else 'images' + (' with augmentation' if c.augment else '')}")
            for epoch in range(first_epoch, phase.epochs):
                if stopped_by_budget:
                    break
                where = (f"The last good checkpoint is {path} (after epoch {len(history)})." if path and history
                         else "No checkpoint was written yet.")
                deadline = None
                if deadline_base is not None:
                    deadline = time.perf_counter() + max(0.0, deadline_base - train_seconds - self.extract_seconds)
                began = time.perf_counter()
                self._set_modes(phase, frozen)
                loss, acc, out_of_time = self._train_epoch(phase, epoch, optimizer, where, deadline)
                seconds = time.perf_counter() - began
                train_seconds += seconds
                val_loss, val_acc, _, _ = self._evaluate(phase, full=False, desc="held-out")
                record = {"phase": phase.name, "epoch": epoch + 1, "train_loss": loss, "train_acc": acc,
                          "val_loss": val_loss, "val_acc": val_acc, "seconds": round(seconds, 3),
                          "lr": [optimizer.effective_lr(g) for g in optimizer.param_groups]}
                history.append(record)
                epochs_run += 1
                self.log(f"{phase.name} epoch {epoch + 1}/{phase.epochs}: loss {loss:.4f} acc {acc:.4f} | "
                         f"held-out loss {val_loss:.4f} acc {val_acc:.4f} | {seconds:.1f}s")
                if path:
                    save_checkpoint(path, {
                        "identity": identity, "phase": p_index, "epoch": epoch + 1,
                        "model": self.model.state_dict(), "optimizer": optimizer.state_dict(),
                        "rng": mt_random.get_state(), "history": history, "train_seconds": train_seconds,
                    })
                if out_of_time:
                    stopped_by_budget = True
                    self.log(f"time budget of {c.time_budget:.0f}s spent: stopping")
                if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
                    return None
            after = state_digest(frozen_named)
            moved = [name for name in before if before[name] != after[name]]
            if moved:
                raise FrozenParameterChanged(
                    f"{len(moved)} frozen parameter(s)/buffer(s) changed during phase '{phase.name}': "
                    f"{', '.join(moved[:5])}{' ...' if len(moved) > 5 else ''}")
            frozen_checks.append(f"{phase.name}: {len(before)} frozen arrays bitwise unchanged")
        began = time.perf_counter()
        last = phases[-1] if phases else None
        _, final_acc, logits, labels = self._evaluate(last, full=True, desc="test")
        eval_seconds = time.perf_counter() - began
        predictions = logits.argmax(axis=1)
        matrix = confusion_matrix(labels, predictions, len(self.splits.classes))
        result = RunResult(
            mode=c.mode, accuracy=final_acc, confusion=matrix.tolist(), classes=list(self.splits.classes),
            history=history, train_seconds=round(train_seconds, 3), extract_seconds=round(self.extract_seconds, 3),
            extract_seconds_uncached=round(self.cold_extract_seconds, 3),
            eval_seconds=round(eval_seconds + self.eval_extract_seconds, 3), epochs_run=len(history), stopped_by_budget=stopped_by_budget,
            cache=self.cache_report, frozen_check="; ".join(frozen_checks),
            per_class_accuracy=per_class_accuracy(matrix),
        )
        self.log(f"{c.mode}: test accuracy {final_acc:.4f} on {len(labels)} images "
                 f"(training {train_seconds:.1f}s + feature extraction {self.extract_seconds:.1f}s, "
                 f"wall {time.perf_counter() - run_began:.1f}s)")
        if self.out_dir:
            result.files = self.write_outputs(result)
        return result

    def write_outputs(self, result: RunResult) -> dict:
        files = {}
        os.makedirs(self.out_dir, exist_ok=True)
        curves = plot_learning_curves(result.history, os.path.join(self.out_dir, "curves.png"))
        if curves:
            files["curves"] = curves
        conf = plot_confusion(numpy.asarray(result.confusion), result.classes,
                              os.path.join(self.out_dir, "confusion.png"),
                              title=f"{result.mode}: accuracy {100 * result.accuracy:.1f}%")
        if conf:
            files["confusion"] = conf
        log_path = os.path.join(self.out_dir, "run.json")
        files["log"] = log_path
        payload = {"config": asdict(self.config), "data": self.splits.describe(), "notes": self.splits.notes,
                   "preprocessing": self.spec.to_dict(), "segments": self.model.segment_names, **result.to_dict()}
        payload["files"] = dict(files)
        atomic_write(log_path, lambda h: h.write(json.dumps(payload, indent=1, default=str).encode()))
        return files
