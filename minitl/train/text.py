"""Text classification on the one Trainer: a BERT encoder Φ, a new head, the three modes.

    s = pool(Φ(ids, mask))        mean over real tokens (or [CLS], or BERT's pooler): (N, D)
    ŷ = W · dropout(s) + b        the new head (BertForSequenceClassification's)

    features   Φ frozen; s computed once (length-sorted batches) and cached; the head trained on s
               with AdamW at ``lr``
    finetune   Φ and the head trained together from the pretrained weights: AdamW at ``finetune_lr``,
               decoupled weight decay 0.01 on every weight except biases and LayerNorm, learning rate
               warmed up linearly over the first 10 % of the steps then decayed linearly to 0, the
               gradients' joint norm clipped to 1.0 (Devlin et al. 2019's recipe)
    scratch    the same architecture from random weights (BERT's initialisation), same recipe at
               ``scratch_lr``, ``finetune_epochs`` epochs

Training batches are length-bucketed (see minitl.data.text.buckets): each padded only to its own
longest text.  Checkpoints, --resume, the NaN guard, run.json and plots are the image Trainer's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .. import nn
from ..distributed import world
from ..data.loader import DataLoader
from ..data.text import BucketLoader, EncodedText
from ..data.text.buckets import batch_count
from ..optim import AdamW, LinearWarmupDecay
from .features import FeatureCache
from .loop import to_tensor
from .model import TransferModel
from .plan import Phase, TrainConfig
from .store import FeatureStore
from .trainer import Trainer

POOLINGS = ("mean", "cls", "pooler")


@dataclass
class TextConfig(TrainConfig):
    """The text recipe's settings (TrainConfig's, with text defaults and a few of its own)."""

    epochs: int = 20  # features: epochs of the head on cached sentence vectors (cheap)
    finetune_epochs: int = 2  # finetune and scratch: epochs through the whole encoder
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 1e-3  # the head on cached sentence vectors (AdamW)
    finetune_lr: float = 5e-5  # the setting (the article's is 2e-5)
    scratch_lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1  # fraction of the steps with a linear warm-up
    clip: float = 1.0  # max joint gradient norm (0: off)
    max_length: int = 128
    pooling: str = "mean"
    head_dropout: float = 0.1
    flip: bool = False  # (images only)

    def check(self) -> None:
        super().check()
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {self.pooling!r}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be at least 2 ([CLS] and [SEP]), got {self.max_length}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup}")
        if self.finetune_epochs < 1 and self.mode != "features":
            raise ValueError(f"{self.mode} needs finetune_epochs >= 1")


@dataclass
class TextSpec:
    """What the token ids depend on (the feature-cache key and run.json's 'preprocessing')."""

    tokenizer: str
    vocab_size: int
    max_length: int
    pooling: str

    def to_dict(self) -> dict:
        return asdict(self)

    def config(self) -> dict:
        return asdict(self)


class TextEncoder(nn.Module):
    """A BERT encoder with its pooling: ``forward_features((ids, mask))`` -> sentence vectors (N, D)."""

    def __init__(self, bert, pooling: str = "mean"):
        super().__init__()
        self.bert, self.pooling = bert, pooling
        self.num_features = bert.config.hidden_size

    def forward_features(self, x):
        ids, mask = x
        return self.bert.pool(self.bert(ids, mask), mask, self.pooling)

    def forward(self, x):
        return self.forward_features(x)


class TextHead(nn.Module):
    """ŷ = W · dropout(s) + b on sentence vectors s (N, D); W ~ N(0, 0.02²), b = 0 as BERT's."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.in_features, self.num_classes, self.hidden = in_features, num_classes, 0
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.02)
        nn.init.zeros_(self.fc.bias)

    @staticmethod
    def pool(x):
        if x.ndim != 2:
            raise ValueError(f"TextHead expects sentence vectors (N, D), got {x.shape}")
        return x

    def forward(self, x):
        return self.fc(self.dropout(self.pool(x)))


class TextTransferModel(TransferModel):
    """One segment, ``encoder`` (token ids -> sentence vectors), and a :class:`TextHead`."""

    def __init__(self, encoder: TextEncoder, num_classes: int, dropout: float = 0.1):
        nn.Module.__init__(self)
        self.backbone = encoder
        object.__setattr__(self, "segments", [("encoder", encoder.forward_features)])
        self.head = TextHead(encoder.num_features, num_classes, dropout)

    @property
    def stage_names(self) -> list[str]:
        return ["encoder"]

    def segment_modules(self, start: int, stop: int | None = None) -> list:
        stop = 1 if stop is None else stop
        return [self.backbone] if start <= 0 < stop else []


def decay_groups(modules, lr: float, weight_decay: float) -> list:
    """AdamW groups: weight decay on every weight except biases and LayerNorm's γ, β (BERT's rule)."""
    decay, no_decay = [], []
    for module in modules:
        for sub in module.modules():
            for name, p in sub._parameters.items():
                if p is None:
                    continue
                (no_decay if isinstance(sub, nn.LayerNorm) or name == "bias" else decay).append(p)
    groups = [{"params": decay, "lr": lr, "weight_decay": weight_decay},
              {"params": no_decay, "lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


class StepOptimizer:
    """An optimizer with the per-step extras of the text recipe: ``step()`` clips the gradients' joint
    norm, steps the optimizer, then advances the learning-rate schedule.  Its state_dict carries both."""

    def __init__(self, optimizer, clip: float = 0.0, schedule=None):
        self.optimizer, self.clip, self.schedule = optimizer, clip, schedule
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    @property
    def param_groups(self):
        return self.optimizer.param_groups

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        if self.clip:
            nn.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()

    def effective_lr(self, group: dict) -> float:
        return group["lr"]

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict() if self.schedule is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])


def encode_splits(splits, tokenizer, max_length: int):
    """The splits with their texts tokenized once (EncodedText), everything else kept."""
    from copy import copy  # noqa: PLC0415

    encoded = copy(splits)
    encoded.train = EncodedText(splits.train, tokenizer, max_length)
    encoded.test = EncodedText(splits.test, tokenizer, max_length)
    encoded.unit = "texts"
    return encoded


class TextTrainer(Trainer):
    """The Trainer for :class:`TextTransferModel` on tokenized splits (see :func:`encode_splits`).

    Light checkpoints: in ``features`` mode the frozen encoder (~90 MB for MiniLM) is not rewritten
    every epoch; the checkpoint holds the head and the encoder's sha256 references (resume checks them).
    """

    light_checkpoints = True

    def __init__(self, model: TextTransferModel, splits, spec: TextSpec, config: TextConfig, out_dir=None,
                 cache_dir=None, show_progress: bool = True, log=None, device=None, weights_id: str | None = None):
        import os  # noqa: PLC0415

        config.check()
        self.comm = world()
        if self.comm.distributed:
            raise ValueError("text training runs in one process (no data-parallel text runs yet); drop mpiexec")
        self.model, self.splits, self.spec, self.config = model, splits, spec, config
        self.out_dir = os.fspath(out_dir) if out_dir else None
        self.show_progress, self.device = show_progress, device
        self.log = log or (lambda message: None)
        self._weights_id = weights_id
        self.store = FeatureStore(model, splits, spec, FeatureCache(cache_dir, enabled=config.cache),
                                  lambda: self.weights_id, self._tensor, config.eval_batch_size, config.prefetch,
                                  mirror=False, log=self.log, show_progress=show_progress,
                                  make_loader=lambda dataset: self._text_loader(dataset, train=False), comm=self.comm)
        self._eval_subsets: dict = {}

    def _tensor(self, batch):
        if isinstance(batch, tuple):
            return tuple(to_tensor(a, self.device) for a in batch)
        return to_tensor(batch, self.device)

    def _text_loader(self, dataset, train: bool, seed: int = 0, batch_size: int | None = None):
        size = batch_size or (self.config.batch_size if train else self.config.eval_batch_size)
        return BucketLoader(dataset, batch_size=size, shuffle=train, seed=seed, prefetch=self.config.prefetch)

    def plan(self) -> list[Phase]:
        c, model = self.config, self.model
        encoder, head = model.backbone, model.head
        if c.mode == "features":
            return [Phase("head", 1, c.epochs, [("head", [head], c.lr)], cached=True, bn_train=False, seed=c.seed)]
        if c.mode == "finetune":
            groups = [("encoder", [encoder], c.finetune_lr), ("head", [head], c.finetune_lr)]
            return [Phase("finetune", 0, c.finetune_epochs, groups, cached=False, bn_train=True, seed=c.seed)]
        return [Phase("scratch", 0, c.finetune_epochs, [("network", [encoder, head], c.scratch_lr)], cached=False,
                      bn_train=True, seed=c.seed)]

    def make_optimizer(self, phase: Phase) -> StepOptimizer:
        c = self.config
        groups = [g for _, modules, lr in phase.groups for g in decay_groups(modules, lr, c.weight_decay)]
        optimizer = AdamW(groups, lr=phase.groups[0][2], weight_decay=c.weight_decay)
        if phase.cached:  # the head on cached vectors: a constant rate
            return StepOptimizer(optimizer, clip=c.clip)
        steps = phase.epochs * batch_count(len(self.splits.train), c.batch_size)
        schedule = LinearWarmupDecay(optimizer, total_steps=steps, warmup_steps=int(round(c.warmup * steps)))
        return StepOptimizer(optimizer, clip=c.clip, schedule=schedule)

    def _train_epoch(self, phase: Phase, epoch: int, optimizer, where: str, deadline: float | None):
        if phase.cached:
            return super()._train_epoch(phase, epoch, optimizer, where, deadline)
        from .loop import train_epoch  # noqa: PLC0415

        loader = self._text_loader(self.splits.train, train=True, seed=phase.seed)
        loader.set_epoch(epoch)
        return train_epoch(self.model, phase, epoch, loader, optimizer, self._tensor, where, deadline,
                           show_progress=self.show_progress, comm=self.comm)

    def predict_logits(self, source, start: int, desc: str = "evaluate"):
        from .features import FeatureDataset  # noqa: PLC0415
        from .loop import predict  # noqa: PLC0415

        if isinstance(source, FeatureDataset):
            loader = DataLoader(source, batch_size=max(self.config.eval_batch_size, 256))
        else:
            loader = self._text_loader(source, train=False)
        return predict(self.model, loader, start, self._tensor, desc, show_progress=self.show_progress)
