"""The network of ``minitl multitask``: a pretrained backbone's last stages (fine-tuning) or none
(frozen features), a shared Dense layer, one head per task — built on the TransferModel, so the main
task's network is an ordinary classifier that ``minitl predict`` can load.

    input  a = Φ_{<c}(x)          activations at the cut c, cached once (the frozen lower stages)
    trunk  z = ReLU(W pool(Φ_{≥c}(a)) + b)
                                  features mode: c = all segments, Φ_{≥c} is the identity on pooled features
                                  finetune mode: c = the start of the last ``unfreeze`` stages, trained at
                                  a low learning rate, BatchNorm kept in inference mode (as ``finetune``)
    heads  main = the TransferModel head's last layer (fc2); aux = Linear(hidden, groups)
"""
from __future__ import annotations

from .. import nn
from .. import random as mt_random
from .model import ClassifierHead, TransferModel, batchnorm_modules


class BackboneTrunk(nn.Module):
    """z = ReLU(fc1(pool(segments[cut:](a)))) of a :class:`TransferModel` (sharing its modules)."""

    def __init__(self, model: TransferModel, cut: int):
        super().__init__()
        object.__setattr__(self, "transfer", model)  # not registered: only the trained parts below are
        self.cut = int(cut)
        self.stages = nn.ModuleList(model.segment_modules(self.cut)) if self.cut < len(model.segments) \
            else nn.ModuleList([])
        self.fc1 = model.head.fc1
        self.relu = nn.ReLU()

    def forward(self, a):
        return self.relu(self.fc1(ClassifierHead.pool(self.transfer.run_segments(a, self.cut))))

    def backbone_parameters(self) -> list:
        """The unfrozen stages' parameters (trained at the lower backbone learning rate)."""
        return list(self.stages.parameters())

    def train(self, mode: bool = True):
        super().train(mode)
        for bn in batchnorm_modules(list(self.stages)):  # pretrained statistics stay (freeze_bn, as finetune)
            bn.eval()
        return self

    def extra_repr(self) -> str:
        stages = ", ".join(self.transfer.segment_names[self.cut:]) or "none (cached pooled features)"
        return f"trained backbone stages: {stages}"


def build_transfer_multitask(backbone, heads: dict, hidden: int, seed: int, cut: int | None = None,
                             weights=None, weighting="fixed", probe_shape=None):
    """(TransferModel, MultiTask): ``heads`` = {"main": classes, "aux": groups, ...}; the first is the
    TransferModel head's own output layer.  ``cut`` None: features mode (nothing of the backbone trained).
    The trunk's and the main head's initial weights depend only on ``seed`` (the same with and
    without auxiliary heads)."""
    names = list(heads)
    mt_random.manual_seed(seed)
    model = TransferModel(backbone, heads[names[0]], hidden=hidden, probe_shape=probe_shape)
    built = {names[0]: model.head.fc2}
    built.update({name: nn.Linear(hidden, classes) for name, classes in list(heads.items())[1:]})
    backbone.requires_grad_(False)
    trunk = BackboneTrunk(model, len(model.segments) if cut is None else cut)
    trunk.stages.requires_grad_(True)
    return model, nn.MultiTask(trunk, built, weights=weights, weighting=weighting)
