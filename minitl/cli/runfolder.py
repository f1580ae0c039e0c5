"""The run folder of ``minitl finetune`` (``--out``): never overwritten by accident, resumable by name.

    check_fresh(out, ...)       refuse an --out that holds an earlier run's model or checkpoint
                                (offer --resume and --overwrite); --overwrite removes that run's files
    save_settings / resume      settings.json beside the checkpoint: the run's flags, so ``--resume``
                                needs only ``--out``; a flag given again must match or is refused by name
    interrupt_message           after Ctrl-C: where the checkpoint is and the exact command to resume
    describe_written            what a run wrote and how big, and how much the feature cache holds

Only files and printing: the training itself is in :mod:`minitl.train`.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex

SETTINGS_FILE = "settings.json"
CHECKPOINT_FILE = "checkpoint.npz"
MODEL_FILE = "model.npz"
# every file `minitl finetune` writes into its --out folder (what --overwrite replaces)
RUN_FILES = (MODEL_FILE, CHECKPOINT_FILE, "run.json", SETTINGS_FILE, "curves.png", "confusion.png")
# flags that may change between a run and its --resume: where and how it runs, not what it computes
# (the trainer's own check on the checkpoint leaves the same ones out)
FREE_ON_RESUME = {"out", "resume", "overwrite", "json", "quiet", "device", "prefetch", "eval_batch_size",
                  "time_budget", "cache_dir", "no_cache", "distributed", "handler", "command", "parser", "argv"}
PATH_SETTINGS = ("weights", "data", "model")


def _flag(parser, dest: str) -> str:
    for action in parser._actions:  # noqa: SLF001 (argparse keeps its options here)
        if action.dest == dest and action.option_strings:
            return max(action.option_strings, key=len)
    return dest


def explicit_options(parser, argv) -> set[str]:
    """The destinations of the options actually typed in ``argv`` (the sub-command's own arguments):
    argparse parses them again with every default suppressed, so abbreviations and ``--x=v`` count too."""
    saved = [(action, action.default) for action in parser._actions]  # noqa: SLF001
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        given, _ = parser.parse_known_args(list(argv))
    finally:
        for action, default in saved:
            action.default = default
    return set(vars(given))


def _present(out_dir, model_path=None) -> list[str]:
    candidates = [os.path.join(out_dir, CHECKPOINT_FILE), model_path or os.path.join(out_dir, MODEL_FILE)]
    return [path for path in candidates if os.path.isfile(path)]


def check_fresh(out_dir, model_path=None, overwrite: bool = False, resume_offer: bool = True) -> list[str]:
    """Refuse (ValueError) a folder that holds an earlier run's model or checkpoint, unless ``overwrite``,
    which removes the earlier run's files.  Returns the paths removed."""
    present = _present(out_dir, model_path)
    if not present:
        return []
    if not overwrite:
        offer = "add --resume to continue that run, --overwrite to replace it" if resume_offer else \
            "add --overwrite to replace it"
        raise ValueError(f"{out_dir} already holds an earlier run ({', '.join(os.path.basename(p) for p in present)}): "
                         f"{offer}, or choose another --out")
    removed = []
    for path in [os.path.join(out_dir, name) for name in RUN_FILES] + ([model_path] if model_path else []):
        if os.path.isfile(path):
            os.unlink(path)
            removed.append(path)
    return removed


def _stored_value(dest, value):
    if dest in PATH_SETTINGS and isinstance(value, str) and os.path.exists(value):
        return os.path.abspath(value)  # a resume from another working directory finds the same files
    return value


def save_settings(out_dir, command: str, args, parser) -> str:
    """Write ``out_dir/settings.json``: every flag of the run that decides what it computes."""
    settings = {dest: _stored_value(dest, value) for dest, value in sorted(vars(args).items())
                if dest not in FREE_ON_RESUME and not callable(value)}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, SETTINGS_FILE)
    payload = {"command": command, "settings": settings,
               "flags": {dest: _flag(parser, dest) for dest in settings}}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(tmp, path)
    return path


def apply_saved_settings(args, parser, explicit: set[str], out_dir) -> str | None:
    """``--resume``: fill every flag not typed from ``out_dir/settings.json``; a typed flag whose value
    differs from the run's is refused, naming it.  Returns the settings file (None if the run has none:
    then the checkpoint's own check decides)."""
    path = os.path.join(out_dir, SETTINGS_FILE)
    if not os.path.isfile(os.path.join(out_dir, CHECKPOINT_FILE)):
        raise FileNotFoundError(f"--resume: no checkpoint in {out_dir} (nothing to continue); run without --resume "
                                "to start")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)["settings"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"--resume: cannot read {path} ({error}); give every flag of the run again") from None
    for dest, value in saved.items():
        if not hasattr(args, dest):
            continue
        if dest in explicit:
            given = _stored_value(dest, getattr(args, dest))
            if given != value:
                flag = _flag(parser, dest)
                raise ValueError(
                    f"--resume: {flag} {_show(given)} differs from the run's {flag} {_show(value)} ({path}); "
                    "leave it out to continue the run as it was, or start a new run (--overwrite or another --out)")
        else:
            setattr(args, dest, value)
    return path


def _show(value) -> str:
    return "on" if value is True else "off" if value is False else str(value)


def resume_command(command: str, out_dir, model_path=None) -> str:
    extra = f" --model {shlex.quote(os.fspath(model_path))}" if model_path else ""
    return f"minitl {command} --out {shlex.quote(os.fspath(out_dir))}{extra} --resume"


def interrupt_message(command: str, out_dir, model_path=None, has_settings: bool = True) -> str:
    """What Ctrl-C leaves behind, and how to go on from it (one line each)."""
    checkpoint = os.path.join(out_dir, CHECKPOINT_FILE)
    if not os.path.isfile(checkpoint):
        return ("interrupted before the first checkpoint (written after each epoch): nothing to resume; "
                f"run the same command again to start over")
    again = resume_command(command, out_dir, model_path)
    if not has_settings:
        again += "   (with the same flags as the interrupted run)"
    return f"interrupted. The last checkpoint is {checkpoint}\nto continue: {again}"


# ---------------------------------------------------------------------------- what was written
def human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


WHAT = {"model": "the trained classifier (minitl evaluate / predict)", "checkpoint": "weights, optimizer and RNG "
        "state after the last epoch (for --resume)", "log": "settings, per-epoch history, accuracy",
        "curves": "loss and accuracy per epoch", "confusion": "confusion matrix", "settings": "the run's flags "
        "(for --resume)", "plot": "accuracy and time per mode"}


def written_files(files: dict, out_dir=None) -> dict:
    """``files`` plus the checkpoint and settings file of ``out_dir`` where present."""
    files = dict(files)
    if out_dir:
        for key, name in (("checkpoint", CHECKPOINT_FILE), ("settings", SETTINGS_FILE)):
            path = os.path.join(out_dir, name)
            if key not in files and os.path.isfile(path):
                files[key] = path
    return files


def run_files(out_dir) -> dict:
    """{kind: path} of every file `minitl finetune` wrote into ``out_dir`` that is there."""
    kinds = {MODEL_FILE: "model", CHECKPOINT_FILE: "checkpoint", "run.json": "log", SETTINGS_FILE: "settings",
             "curves.png": "curves", "confusion.png": "confusion"}
    return {kinds[name]: os.path.join(out_dir, name) for name in RUN_FILES
            if os.path.isfile(os.path.join(out_dir, name))}


def describe_written(files: dict, cache_entries=None, cache_dir=None, folders=()) -> list[str]:
    """Lines naming every written file with its size (and each of ``folders`` — a run folder each — with
    the total of its run files), then what the feature cache holds."""
    rows = [(key, path, os.path.getsize(path)) for key, path in files.items() if path and os.path.isfile(path)]
    for folder in folders:
        present = run_files(folder)
        if present:
            rows.append((f"{', '.join(present)}", os.path.join(folder, ""),
                         sum(os.path.getsize(p) for p in present.values())))
    lines = []
    if rows:
        total = sum(size for _, _, size in rows)
        lines.append(f"written ({human_size(total)}):")
        width = max(len(path) for _, path, _ in rows)
        for key, path, size in rows:
            lines.append(f"  {path:<{width}}  {human_size(size):>9}  {WHAT.get(key, key)}")
    if cache_dir and cache_entries is not None:
        this_run = cache_entries.get("this_run_bytes", 0)
        lines.append(f"feature cache: {human_size(cache_entries['bytes'])} in {cache_entries['entries']} "
                     f"entr{'y' if cache_entries['entries'] == 1 else 'ies'} under {cache_dir}"
                     + (f" ({human_size(this_run)} of them this run's)" if this_run else "")
                     + "; `minitl cache ls` lists them, `minitl cache clear` frees the space")
    return lines
