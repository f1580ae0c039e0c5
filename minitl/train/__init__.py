"""Transfer learning: a pretrained backbone, a new head, and the three ways to train them.

    model.py       TransferModel (backbone segments + ClassifierHead), freezing, digests
    trainer.py     Trainer: scratch / features / finetune phases, checkpoints, resume, guardrails
    features.py    feature extraction and its on-disk cache
    checkpoint.py  atomic, pickle-free checkpoints
    metrics.py     accuracy, confusion matrix, PNG plots
    backbones.py   backbones by name, pretrained weights, the saved classifier file
    workflow.py    the command line's jobs: finetune, compare, evaluate, predict
    progress.py    progress bars (tqdm if installed)
"""
from .backbones import TinyNet, create_backbone, load_backbone, load_classifier, save_classifier
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .features import FeatureCache, FeatureDataset
from .metrics import accuracy, confusion_matrix
from .model import ClassifierHead, TransferModel
from .trainer import (
    MODES, FrozenParameterChanged, RunResult, TrainConfig, Trainer, TrainingDiverged, to_tensor,
)

__all__ = [
    "TinyNet", "create_backbone", "load_backbone", "load_classifier", "save_classifier", "CheckpointError",
    "load_checkpoint", "save_checkpoint", "FeatureCache", "FeatureDataset", "accuracy", "confusion_matrix",
    "ClassifierHead", "TransferModel", "MODES", "FrozenParameterChanged", "RunResult", "TrainConfig", "Trainer",
    "TrainingDiverged", "to_tensor",
]
