"""The text side of ``minitl finetune | compare | evaluate | predict`` (parsing and printing only).

A job is text when ``--data`` names text (imdb, rotten-tomatoes, a .csv, a folder of <class>/*.txt),
``--weights minilm`` or a recurrent job.  Options not typed take the text recipe's defaults
(:class:`minitl.train.text.TextConfig`, :data:`minitl.train.text_workflow.TEXT_DEFAULTS`), not the
image ones: batch 16, AdamW, lr 5e-5 for finetune, 128 tokens, 2 finetune epochs.

A recurrent job (``--arch bilstm|bigru``, or ``--weights glove|minilm-wordpiece``: word vectors ->
BiLSTM -> head, :mod:`minitl.train.text_rnn`) takes that recipe's defaults instead
(:data:`minitl.train.text_rnn.RNN_DEFAULTS`: Adam lr 2e-3, batch 32, 6 epochs, 256 words, hidden 64).
"""
from __future__ import annotations

from . import runfolder

TEXT_MODES = ("features", "finetune", "scratch", "tfidf")
# option destination -> TextConfig field
_CONFIG_FIELDS = {"epochs": "epochs", "finetune_epochs": "finetune_epochs", "batch_size": "batch_size",
                  "eval_batch_size": "eval_batch_size", "lr": "lr", "finetune_lr": "finetune_lr",
                  "scratch_lr": "scratch_lr", "weight_decay": "weight_decay", "warmup": "warmup", "clip": "clip",
                  "max_length": "max_length", "pooling": "pooling", "seed": "seed", "time_budget": "time_budget",
                  "prefetch": "prefetch"}


def is_text_job(args) -> bool:
    from ..data.text import is_text_spec  # noqa: PLC0415

    return (is_text_spec(getattr(args, "data", None)) or str(getattr(args, "weights", "")).lower() == "minilm"
            or is_rnn_job(args))


def is_rnn_job(args) -> bool:
    """A recurrent text job: ``--arch bilstm|bigru`` or ``--weights glove|minilm-wordpiece``."""
    from ..train.text_rnn import is_rnn_job as rnn  # noqa: PLC0415

    return rnn(getattr(args, "arch", None), getattr(args, "weights", None))


def _explicit(args) -> set:
    parser = getattr(args, "parser", None)
    if parser is None:
        return set(vars(args))
    argv = list(getattr(args, "argv", None) or [])
    argv = argv[argv.index(args.command) + 1:] if args.command in argv else argv
    return runfolder.explicit_options(parser, argv)


def apply_text_defaults(args) -> None:
    """Options not typed take the text recipe's defaults (in ``args``, so settings.json and --resume see them)."""
    from ..train.text import TextConfig  # noqa: PLC0415
    from ..data.text.sources import TEXT_NAMES  # noqa: PLC0415
    from ..train.text_workflow import TEXT_DEFAULTS  # noqa: PLC0415

    if getattr(args, "resume", False):
        return  # the saved settings already hold them
    given, recipe = _explicit(args), TextConfig()
    defaults = {dest: getattr(recipe, field) for dest, field in _CONFIG_FIELDS.items()}
    defaults.update(finetune_epochs=TEXT_DEFAULTS["finetune_epochs"], max_length=TEXT_DEFAULTS["max_length"])
    if is_rnn_job(args):
        from ..train.text_rnn import RNN_DEFAULTS  # noqa: PLC0415

        defaults.update(RNN_DEFAULTS)
        if getattr(args, "arch", None) is None:
            args.arch = "bilstm"
    if str(getattr(args, "data", None) or "imdb").lower() in TEXT_NAMES:  # the built-in sets: a stated subset
        defaults.update(train_per_class=TEXT_DEFAULTS["train_per_class"],
                        test_per_class=TEXT_DEFAULTS["test_per_class"])
    for dest, value in defaults.items():
        if dest not in given and hasattr(args, dest):
            setattr(args, dest, value)


def text_config(args, mode: str):
    """The TextConfig of ``args`` (after :func:`apply_text_defaults`)."""
    from ..train.text import TextConfig  # noqa: PLC0415

    values = {field: getattr(args, dest) for dest, field in _CONFIG_FIELDS.items() if hasattr(args, dest)}
    return TextConfig(mode=mode, cache=not getattr(args, "no_cache", False), **values)


def header(log, config, args=None) -> None:
    from ..train.text_workflow import describe_defaults  # noqa: PLC0415

    if args is not None and is_rnn_job(args):
        from ..train.text_rnn import describe_recipe  # noqa: PLC0415

        log(describe_recipe(config, str(args.arch).lower(), args.hidden) + f"; word vectors: {args.weights or 'glove'}")
        from ..train.text_workflow import TEXT_DEFAULTS  # noqa: PLC0415

        log(f"text defaults: {TEXT_DEFAULTS['train_per_class']} training and {TEXT_DEFAULTS['test_per_class']} "
            "held-out reviews per class (seeded) — the issue's full setting is benchmarks/text_rnn.py")
        return
    log(f"text run: mode {config.mode}, max length {config.max_length} tokens, batch {config.batch_size}, "
        f"AdamW (finetune lr {config.finetune_lr:g}, warm-up {config.warmup:.0%} then linear decay, weight decay "
        f"{config.weight_decay:g}, clip {config.clip:g}), {config.finetune_epochs} finetune epoch(s)")
    log(describe_defaults())


def compare_table(rows) -> str:
    lines = [f"{'mode':<10}{'accuracy':>10}{'time (s)':>10}{'extract':>9}{'train':>9}{'epochs':>8}", "-" * 56]
    for r in rows:
        lines.append(f"{r['mode']:<10}{100 * r['accuracy']:>9.2f}%{r['time_seconds']:>10.1f}"
                     f"{r['extract_seconds']:>9.1f}{r['train_seconds']:>9.1f}{r['epochs']:>8}")
    return "\n".join(lines)
