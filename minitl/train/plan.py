"""The plan of a run: its settings (:class:`TrainConfig`) and the phases they imply.

A run is a list of *phases*.  A phase trains the network from segment ``cut`` on — the
segments before it are frozen and either read from the feature cache or run without a graph —
with its own optimizer (parameter groups, each with its learning rate):

    scratch    [scratch: cut 0, everything, BatchNorm in training mode]
    features   [head: cut = all segments, the head on cached pooled features]
    finetune   [head: as above,  finetune: cut = start of the last N stages, those stages at a
                lower learning rate and the head, BatchNorm kept in inference mode]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

MODES = ("scratch", "features", "finetune")


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

    def identity(self) -> dict:
        """The settings that decide the weights a run ends with (a checkpoint must match them to resume)."""
        settings = asdict(self)
        for volatile in ("prefetch", "time_budget", "cache", "eval_batch_size", "epoch_eval_size"):
            settings.pop(volatile)
        return settings


@dataclass
class Phase:
    name: str
    cut: int  # first trained segment
    epochs: int
    groups: list  # [(label, modules, lr)]
    cached: bool  # inputs from the feature cache (else images every epoch)
    bn_train: bool  # BatchNorm of the backbone in training mode?
    seed: int = 0

    def modules(self) -> list:
        """Every trained module of the phase, over all its parameter groups."""
        return [m for _, modules, _ in self.groups for m in modules]


def plan_phases(config: TrainConfig, model) -> list[Phase]:
    """The phases of ``config.mode`` for a :class:`TransferModel` (segments + head)."""
    c = config
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
