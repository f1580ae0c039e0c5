"""The trainer: scratch, features and finetune on one code path.

The run's phases come from :mod:`.plan`, the frozen part's activations from the feature store
(:mod:`.store`), each epoch from :mod:`.loop`, and the report from :mod:`.report`; this file
runs the phases in order and keeps the run resumable and honest (the held-out checks are in
:mod:`.heldout`):

After every epoch a checkpoint (weights, optimizer state, RNG state, history, position) is
written atomically; ``resume=True`` continues from it and ends with the weights an
uninterrupted run would have.  A NaN/Inf loss stops the run (the last good checkpoint stays);
so do NaN/Inf weights after an epoch's last step (never written to a checkpoint) and NaN/Inf
outputs on the held-out split (an error naming the split and whether its data is at fault).
The checkpoint before the newest is kept (``checkpoint.prev.npz``): a damaged newest one is
skipped with a message.  Temporaries left by a killed run in the output folder are removed on start.
A trainer with ``light_checkpoints`` (the text trainer: a 90 MB frozen encoder under a small head)
stores only the arrays that changed since the run began; each unchanged one is kept as a reference,
its sha256, which ``resume`` checks against the freshly built model (the same pretrained weights).
Guardrails: a warning when a frozen part still has BatchNorm in training mode, and a check that
every frozen parameter and buffer is bitwise unchanged at the end of each phase.

Data-parallel on MPI (``comm`` of several ranks; by default the job's world, so ``mpiexec -n N``
just works): every rank starts from rank 0's weights, takes its share of every batch
(``config.batch_size`` is the global batch), and steps with gradients averaged over the ranks
(:mod:`minitl.distributed`); features are extracted in disjoint shards and written to the cache
once; rank 0 alone logs, writes checkpoints (BatchNorm running statistics averaged first) and
outputs.  The held-out evaluation runs on every rank.  A checkpoint holds no trace of the world
size, so ``--resume`` works at any number of ranks.
"""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field

from .. import random as mt_random
from ..distributed import DistributedOptimizer, average_buffers, broadcast_module, world
from ..data.loader import DataLoader
from ..data.transforms import Compose, ImagePipeline, RandomHorizontalFlip, augmentation
from ..fileio import remove_stale_temporaries
from ..optim import SGD
from .checkpoint import CheckpointError, load_latest_checkpoint, previous_path, save_checkpoint
from .features import FeatureCache, FeatureDataset
from .heldout import HeldOutEvaluation
from .loop import TrainingDiverged, to_tensor, train_epoch
from .metrics import confusion_matrix, per_class_accuracy
from .model import TransferModel, batchnorm_modules, set_trainable, state_digest, weights_digest
from .plan import Phase, TrainConfig, plan_phases
from .report import RunResult, write_outputs
from .store import FeatureStore


class FrozenParameterChanged(RuntimeError):
    """A parameter that should have been frozen moved during training."""


@dataclass
class _Progress:
    """Where a run stands: what a checkpoint saves, and what the report sums up."""

    history: list = field(default_factory=list)
    train_seconds: float = 0.0
    phase: int = 0  # index of the phase to run (or continue)
    epoch: int = 0  # epochs of that phase already done
    optimizer: dict | None = None  # the optimizer state saved with that position
    stopped_by_budget: bool = False
    frozen_checks: list = field(default_factory=list)
    identity: dict = field(default_factory=dict)  # settings, data and network this run belongs to


class Trainer(HeldOutEvaluation):
    """Train ``model`` (a :class:`TransferModel`) on ``splits`` (a ``DataSplits``: train, test, classes).

    spec: the backbone's :class:`~minitl.data.Preprocessing`;  out_dir: checkpoint, run log, plots (None:
    nothing written);  weights_id: identity of the pretrained weights for the cache key (default:
    a digest of the backbone's arrays);  log: a function taking one line of text;  comm: the ranks
    of a data-parallel run (default: the MPI world this process belongs to, a single process without one).
    """

    def __init__(self, model: TransferModel, splits, spec, config: TrainConfig, out_dir=None, cache_dir=None,
                 show_progress: bool = True, log=None, device=None, weights_id: str | None = None, comm=None):
        config.check()
        self.comm = world() if comm is None else comm
        if config.batch_size < self.comm.size:
            raise ValueError(f"--batch-size {config.batch_size} is the global batch and must be at least the "
                             f"number of ranks ({self.comm.size})")
        self.model, self.splits, self.spec, self.config = model, splits, spec, config
        self.out_dir = os.fspath(out_dir) if out_dir else None
        root = self.comm.is_root  # only rank 0 speaks
        self.show_progress, self.device = show_progress and root, device
        self.log = (log or (lambda message: None)) if root else (lambda message: None)
        self._weights_id = weights_id
        self.plain = ImagePipeline(spec)
        if config.augment:
            train_augment = augmentation(config.hflip, config.shear, config.zoom, config.crop_padding)
        elif config.flip:
            train_augment = Compose([RandomHorizontalFlip(0.5)])
        else:
            train_augment = None
        self.augmented = ImagePipeline(spec, train_augment) if train_augment is not None else self.plain
        self.store = FeatureStore(model, splits, self.plain, FeatureCache(cache_dir, enabled=config.cache),
                                  lambda: self.weights_id, self._tensor, config.eval_batch_size, config.prefetch,
                                  mirror=config.flip, log=self.log, show_progress=self.show_progress,
                                  comm=self.comm)
        self._eval_subsets: dict = {}  # (cached, cut) -> the per-epoch held-out subset

    @property
    def weights_id(self) -> str:
        if self._weights_id is None:
            self._weights_id = weights_digest(self.model.backbone)
        return self._weights_id

    @property
    def cache_report(self) -> dict:
        return self.store.report

    def plan(self) -> list[Phase]:
        return plan_phases(self.config, self.model)

    def features(self, split: str, cut: int) -> FeatureDataset:
        """Activations at the input of segment ``cut`` for a split (see :class:`FeatureStore`)."""
        return self.store.get(split, cut)

    def _tensor(self, array):
        return to_tensor(array, self.device)

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
                RuntimeWarning, stacklevel=4,
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
    def _image_loader(self, dataset, train: bool, seed: int, batch_size: int):
        """Images through the pipeline: training batches are sharded over the ranks, evaluation is not."""
        return DataLoader(dataset, batch_size=batch_size, shuffle=train, transform=self.augmented if train else self.plain,
                          seed=seed, prefetch=self.config.prefetch, shard=self._shard if train else (0, 1))

    def _train_epoch(self, phase: Phase, epoch: int, optimizer, where: str, deadline: float | None):
        """(mean loss, accuracy, out of time) of one epoch: cached activations or images."""
        if phase.cached:
            loader = DataLoader(self.features("train", phase.cut), batch_size=self.config.batch_size, shuffle=True,
                                seed=phase.seed, shard=self._shard)
        else:
            loader = self._image_loader(self.splits.train, train=True, seed=phase.seed,
                                        batch_size=self.config.batch_size)
        loader.set_epoch(epoch)
        return train_epoch(self.model, phase, epoch, loader, optimizer, self._tensor, where, deadline,
                           show_progress=self.show_progress, comm=self.comm)

    @property
    def _shard(self) -> tuple[int, int]:
        return self.comm.rank, self.comm.size

    # ------------------------------------------------------------------ the run
    light_checkpoints = False  # True: unchanged arrays go into checkpoints as sha256 references only

    def _checkpoint_model_state(self, state) -> dict:
        """The checkpoint's model entries: ``model`` (arrays) and, with ``light_checkpoints``,
        ``unchanged`` (name -> sha256 of the arrays still equal to the run's starting ones)."""
        if not self.light_checkpoints:
            return {"model": state}
        digests = state_digest(state.items())
        unchanged = {name: digest for name, digest in digests.items() if self._pristine.get(name) == digest}
        return {"model": {name: value for name, value in state.items() if name not in unchanged},
                "unchanged": unchanged}

    def _restore_model_state(self, checkpoint: dict, path) -> dict:
        """The full state_dict to load: the checkpoint's arrays, plus the model's own arrays for the
        names it references, which must hash to the recorded digests (the same pretrained weights)."""
        unchanged = checkpoint.get("unchanged") or {}
        if not unchanged:
            return checkpoint["model"]
        own = self.model.state_dict()
        digests = state_digest((name, own[name]) for name in unchanged if name in own)
        differ = [name for name, digest in unchanged.items() if digests.get(name) != digest]
        if differ:
            raise CheckpointError(
                f"{path} refers to {len(unchanged)} unchanged pretrained array(s), but {len(differ)} differ here "
                f"({', '.join(differ[:3])}{' ...' if len(differ) > 3 else ''}): the run started from other weights; "
                "resume with the same --weights, or start afresh")
        return {**{name: own[name] for name in unchanged}, **checkpoint["model"]}

    def _checkpoint_path(self):
        return os.path.join(self.out_dir, "checkpoint.npz") if self.out_dir else None

    def _identity(self) -> dict:
        return {"config": self.config.identity(), "train_data": self.splits.train.fingerprint(),
                "classes": list(self.splits.classes), "segments": self.model.segment_names}

    def _start(self, resume: bool, phases) -> _Progress:
        """A fresh run (seeded), or the position, weights and RNG state of the checkpoint."""
        identity = self._identity()
        if self.out_dir:
            removed, freed = remove_stale_temporaries(self.out_dir)
            if removed:
                self.log(f"removed {removed} temporary file(s) ({freed / 2 ** 20:.1f} MiB) left in {self.out_dir} "
                         "by a run that was killed while writing")
        if not resume:
            mt_random.manual_seed(self.config.seed)
            return _Progress(identity=identity)
        path = self._checkpoint_path()
        if path is None or not (os.path.isfile(path) or os.path.isfile(previous_path(path))):
            raise FileNotFoundError(f"--resume: no checkpoint at {path or '(no output folder given)'}")
        state, path = load_latest_checkpoint(path, log=self.log)
        if state["identity"] != json.loads(json.dumps(identity)):
            raise CheckpointError(
                f"{path} belongs to another run (different settings, data or network); "
                "start afresh without --resume or use another output folder")
        self.model.load_state_dict(self._restore_model_state(state, path))
        mt_random.set_state(state["rng"])
        progress = _Progress(history=state["history"], train_seconds=state["train_seconds"], phase=state["phase"],
                             epoch=state["epoch"], optimizer=state["optimizer"], identity=identity)
        name = phases[progress.phase].name if progress.phase < len(phases) else "done"
        self.log(f"resuming from {path}: phase {name}, {progress.epoch} epoch(s) done")
        return progress

    def fit(self, resume: bool = False) -> RunResult:
        """Run every phase (``resume``: continue from ``out_dir/checkpoint.npz``), evaluate on the
        whole held-out split, write the outputs; returns the :class:`RunResult`."""
        phases = self.plan()
        _ = self.weights_id  # the pretrained weights' digest (cache key), taken before any checkpoint loads
        self.log(self.describe_data(phases))
        self._pristine = state_digest(self.model.state_dict().items()) if self.light_checkpoints else None
        progress = self._start(resume, phases)
        broadcast_module(self.model, self.comm)  # every rank from rank 0's weights
        run_began = time.perf_counter()
        for index in range(progress.phase, len(phases)):
            self._run_phase(phases, index, progress)
        return self._finish(phases[-1] if phases else None, progress, run_began)

    def _prepare_features(self, phases, phase: Phase) -> None:
        """Extraction before the epochs' clock starts (it is timed apart).  Finetune extracts once at
        the lowest cut; the pooled features are computed from it."""
        if len(phases) > 1 and all(p.cached for p in phases):
            lowest = min(p.cut for p in phases)
            for split in ("train", "test"):
                self.features(split, lowest)
        self.features("train", phase.cut)
        self.features("test", phase.cut)

    def make_optimizer(self, phase: Phase):
        """The phase's optimizer: SGD (the image recipe) over its parameter groups, each at its own rate."""
        c = self.config
        groups = [{"params": [p for m in modules for p in m.parameters()], "lr": lr} for _, modules, lr in phase.groups]
        return SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov, decay=c.decay,
                   weight_decay=c.weight_decay)

    def _run_phase(self, phases, index: int, progress: _Progress) -> None:
        c, phase = self.config, phases[index]
        _, frozen = set_trainable(self.model, phase.cut)
        self._set_modes(phase, frozen)
        frozen_named = self._frozen_state(phase.modules())
        before = state_digest(frozen_named)
        optimizer = self.make_optimizer(phase)
        if self.comm.distributed:
            optimizer = DistributedOptimizer(optimizer, self.comm)
        first_epoch = progress.epoch if index == progress.phase else 0
        if progress.optimizer is not None and index == progress.phase and first_epoch > 0:
            optimizer.load_state_dict(progress.optimizer)
        if phase.cached:
            self._prepare_features(phases, phase)
        source = (f"cached {self.store.cut_name(phase.cut)}" if phase.cached
                  else getattr(self.splits, "unit", "images") + (" with augmentation" if c.augment else ""))
        self.log(f"phase '{phase.name}': training {', '.join(label for label, _, _ in phase.groups)} "
                 f"(lr {', '.join(f'{lr:g}' for _, _, lr in phase.groups)}); {source}")
        for epoch in range(first_epoch, phase.epochs):
            if progress.stopped_by_budget:
                break
            self._set_modes(phase, frozen)
            self._run_epoch(phase, index, epoch, optimizer, progress)
        after = state_digest(frozen_named)
        moved = [name for name in before if before[name] != after[name]]
        if moved:
            raise FrozenParameterChanged(
                f"{len(moved)} frozen parameter(s)/buffer(s) changed during phase '{phase.name}': "
                f"{', '.join(moved[:5])}{' ...' if len(moved) > 5 else ''}")
        progress.frozen_checks.append(f"{phase.name}: {len(before)} frozen arrays bitwise unchanged")

    def _run_epoch(self, phase: Phase, index: int, epoch: int, optimizer, progress: _Progress) -> None:
        """Train one epoch, check on the held-out split, log, checkpoint."""
        c, path = self.config, self._checkpoint_path()
        where = (f"The last good checkpoint is {path} (after epoch {len(progress.history)})."
                 if path and progress.history else "No checkpoint was written yet.")
        deadline = None
        if c.time_budget is not None:
            spent = progress.train_seconds + self.store.extract_seconds
            deadline = time.perf_counter() + max(0.0, c.time_budget - spent)
        began = time.perf_counter()
        loss, acc, out_of_time = self._train_epoch(phase, epoch, optimizer, where, deadline)
        seconds = time.perf_counter() - began
        progress.train_seconds += seconds
        average_buffers(self.model, self.comm)  # BatchNorm statistics: local per rank, averaged here
        state = self.model.state_dict()
        broken = self._nonfinite_weights(state)
        if broken:  # never checkpoint them: the last good checkpoint stays the newest
            raise TrainingDiverged(
                f"the weights hold NaN or Inf after {phase.name} epoch {epoch + 1} ({', '.join(broken[:3])}"
                f"{' ...' if len(broken) > 3 else ''}): training stopped. {where} Try a lower learning rate "
                "(--lr / --finetune-lr).")
        val_loss, val_acc, _, labels = self._evaluate(phase, full=False, desc="test check")
        total = len(self.splits.test)
        progress.history.append({"phase": phase.name, "epoch": epoch + 1, "train_loss": loss, "train_acc": acc,
                                 "val_loss": val_loss, "val_acc": val_acc, "val_images": int(len(labels)),
                                 "seconds": round(seconds, 3),
                                 "lr": [optimizer.effective_lr(g) for g in optimizer.param_groups]})
        checked = f"all {total}" if len(labels) == total else f"{len(labels)} of {total}"
        self.log(f"{phase.name} epoch {epoch + 1}/{phase.epochs}: train loss {loss:.4f} acc {acc:.4f} | "
                 f"test ({checked}) loss {val_loss:.4f} acc {val_acc:.4f} | {seconds:.1f}s")
        if path and self.comm.is_root:
            save_checkpoint(path, {
                "identity": progress.identity, "phase": index, "epoch": epoch + 1,
                **self._checkpoint_model_state(state), "optimizer": optimizer.state_dict(),
                "rng": mt_random.get_state(), "history": progress.history, "train_seconds": progress.train_seconds,
            })
        if out_of_time:
            progress.stopped_by_budget = True
            self.log(f"time budget of {c.time_budget:.0f}s spent: stopping")

    def _finish(self, last: Phase | None, progress: _Progress, run_began: float) -> RunResult:
        """The final evaluation on the whole held-out split, the result, the output files."""
        began = time.perf_counter()
        _, final_acc, logits, labels = self._evaluate(last, full=True, desc="test")
        eval_seconds = time.perf_counter() - began
        matrix = confusion_matrix(labels, logits.argmax(axis=1), len(self.splits.classes))
        store = self.store
        result = RunResult(
            mode=self.config.mode, accuracy=final_acc, confusion=matrix.tolist(), classes=list(self.splits.classes),
            history=progress.history, train_seconds=round(progress.train_seconds, 3),
            extract_seconds=round(store.extract_seconds, 3), extract_seconds_uncached=round(store.cold_extract_seconds, 3),
            eval_seconds=round(eval_seconds + store.eval_extract_seconds, 3), epochs_run=len(progress.history),
            stopped_by_budget=progress.stopped_by_budget, cache=store.report,
            frozen_check="; ".join(progress.frozen_checks), per_class_accuracy=per_class_accuracy(matrix),
        )
        unit = getattr(self.splits, "unit", "images")
        self.log(f"{self.config.mode}: test accuracy {final_acc:.4f} on all {len(labels)} test {unit} "
                 f"(training {progress.train_seconds:.1f}s + feature extraction {store.extract_seconds:.1f}s, "
                 f"wall {time.perf_counter() - run_began:.1f}s)")
        if self.out_dir and self.comm.is_root:
            result.files = self.write_outputs(result)
        return result

    def write_outputs(self, result: RunResult) -> dict:
        skipped = list(getattr(self.splits, "skipped", []))
        context = {"config": asdict(self.config), "dataset": self.splits.name, "data": self.splits.describe(),
                   "notes": self.splits.notes, "skipped_images": {"count": len(skipped), "files": skipped},
                   "preprocessing": self.spec.to_dict(), "segments": self.model.segment_names}
        return write_outputs(self.out_dir, result, context)
