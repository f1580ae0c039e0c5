"""Transfer learning: a pretrained backbone, a new head, and the three ways to train them.

    model.py       TransferModel (backbone segments + ClassifierHead), freezing, digests
    plan.py        TrainConfig and the phases of scratch / features / finetune
    trainer.py     Trainer: runs the phases, checkpoints, resume, guardrails
    store.py       the feature store: activations at a cut, from memory, the cache or the images
    features.py    feature extraction and its on-disk cache
    loop.py        one training epoch, one evaluation pass
    report.py      RunResult and the run's files (run.json, plots)
    checkpoint.py  atomic, pickle-free checkpoints
    metrics.py     accuracy, confusion matrix, PNG plots
    backbones.py   backbones by name, pretrained weights, the saved classifier file
    workflow.py    the command line's jobs: finetune, compare, evaluate, predict
    text.py        text classification on the same Trainer: BERT encoder + head, AdamW, warm-up/decay, clipping
    text_workflow.py  the text jobs: finetune, compare (+ TF-IDF baseline), evaluate, predict
    progress.py    progress bars (tqdm if installed)
    conflict.py    one multi-task step and the gradient-conflict diagnostic (cos, norms per step)
    multitask.py   MultiTaskTrainer: several heads on a shared trunk, masked labels, checkpoints, resume
    multitask_report.py / multitask_workflow.py   its run.json and plots | the `minitl multitask` job
"""
from .backbones import TinyNet, create_backbone, load_backbone, load_classifier, save_classifier
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .features import FeatureCache, FeatureDataset
from .metrics import accuracy, confusion_matrix
from .conflict import gradient_conflict, multitask_step
from .multitask import MultiTaskConfig, MultiTaskTrainer, TaskData
from .model import ClassifierHead, TransferModel
from .loop import TrainingDiverged, to_tensor
from .plan import MODES, TrainConfig
from .report import RunResult
from .trainer import FrozenParameterChanged, Trainer

__all__ = [
    "TinyNet", "create_backbone", "load_backbone", "load_classifier", "save_classifier", "CheckpointError",
    "load_checkpoint", "save_checkpoint", "FeatureCache", "FeatureDataset", "accuracy", "confusion_matrix",
    "ClassifierHead", "TransferModel", "MODES", "FrozenParameterChanged", "RunResult", "TrainConfig", "Trainer",
    "TrainingDiverged", "to_tensor", "gradient_conflict", "multitask_step", "MultiTaskConfig", "MultiTaskTrainer",
    "TaskData",
]
