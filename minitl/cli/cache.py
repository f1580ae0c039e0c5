"""``minitl cache ls | clear``: what the feature cache holds, and freeing its space.

    minitl cache ls    [--cache-dir DIR]   one line per entry: size, images x feature shape, split,
                                           where the network was cut, when it was written
    minitl cache clear [--cache-dir DIR]   remove every entry (and leftovers of killed extractions)

The cache (``~/.cache/minitl/features`` or ``$MINITL_CACHE/features``) holds the frozen backbone's
output for a training or held-out split, keyed by weights + data + preprocessing + cut, so a second
run skips the backbone; it is safe to clear at any time (the next run extracts again).
"""
from __future__ import annotations

import json
import os
import time

from .runfolder import human_size


def _cache_dir(path=None) -> str:
    from ..train.features import default_cache_dir  # noqa: PLC0415 (keeps `minitl --help` fast)

    return os.fspath(path) if path else default_cache_dir()


def _key_of(name: str) -> str:
    return name.split(".", 1)[0]


def scan(directory) -> dict:
    """{key: {"bytes", "files", "mtime", "complete"}} for the cache folder (missing folder: empty).
    A complete entry has its features file ``<key>.x.npy``; anything else is a leftover."""
    entries: dict = {}
    if not os.path.isdir(directory):
        return entries
    with os.scandir(directory) as listing:
        for item in listing:
            if not item.is_file(follow_symlinks=False):
                continue
            info = item.stat(follow_symlinks=False)
            entry = entries.setdefault(_key_of(item.name), {"bytes": 0, "files": [], "mtime": 0.0, "complete": False})
            entry["bytes"] += info.st_size
            entry["files"].append(item.path)
            entry["mtime"] = max(entry["mtime"], info.st_mtime)
            if item.name.endswith(".x.npy"):
                entry["complete"] = True
    return entries


def summary(directory, keys=()) -> dict:
    """Entry count and bytes of the whole cache, and the bytes of the entries ``keys`` (one run's)."""
    entries = scan(directory)
    keys = set(keys)
    return {"entries": len(entries), "bytes": sum(e["bytes"] for e in entries.values()),
            "this_run_bytes": sum(e["bytes"] for k, e in entries.items() if k in keys)}


def _description(directory, key) -> dict:
    try:
        with open(os.path.join(directory, key + ".json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def run_ls(args) -> int:
    directory = _cache_dir(args.cache_dir)
    entries = scan(directory)
    rows = []
    for key, entry in sorted(entries.items(), key=lambda item: item[1]["mtime"]):
        info = _description(directory, key)
        rows.append({"key": key, "bytes": entry["bytes"], "complete": entry["complete"],
                     "written": time.strftime("%Y-%m-%d %H:%M", time.localtime(entry["mtime"])),
                     "split": info.get("split"), "images": info.get("images"),
                     "cut": (info.get("segments") or [None])[-1], "pooled": info.get("pooled"),
                     "input_size": (info.get("preprocessing") or {}).get("input_size"),
                     "seconds": info.get("seconds")})
    total = sum(r["bytes"] for r in rows)
    if args.json:
        print(json.dumps({"cache_dir": directory, "entries": rows, "bytes": total}, indent=2))
        return 0
    if not rows:
        print(f"feature cache {directory}: empty")
        return 0
    print(f"feature cache {directory}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}, {human_size(total)}")
    for r in rows:
        if not r["complete"]:
            what = "leftover of an interrupted extraction"
        else:
            after = "pooled features" if r["pooled"] else f"activations after {r['cut'] or 'the input'}"
            what = (f"{r['split'] or '?'} split, {r['images'] if r['images'] is not None else '?'} samples, {after}"
                    + (f", {r['input_size']} px" if r["input_size"] else "")
                    + (f", extracted in {r['seconds']:.0f}s" if isinstance(r["seconds"], (int, float)) else ""))
        print(f"  {r['key'][:12]}  {human_size(r['bytes']):>9}  {r['written']}  {what}")
    print("`minitl cache clear` removes them all (a run extracts again when it needs them)")
    return 0


def run_clear(args) -> int:
    directory = _cache_dir(args.cache_dir)
    entries = scan(directory)
    for entry in entries.values():
        for path in entry["files"]:
            try:
                os.unlink(path)
            except FileNotFoundError:  # another process removed it first
                continue
    freed = sum(entry["bytes"] for entry in entries.values())
    if args.json:
        print(json.dumps({"cache_dir": directory, "removed_entries": len(entries), "freed_bytes": freed}))
    else:
        print(f"feature cache {directory}: removed {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, "
              f"freed {human_size(freed)}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("cache", help="list or clear the feature cache (backbone outputs of earlier runs)",
                                   description=__doc__.split("\n\n")[-1].replace("\n", " "))
    sub = parser.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    for name, handler, text in (("ls", run_ls, "one line per entry: size, split, images, where it was cut"),
                                ("clear", run_clear, "remove every entry and free the space")):
        action = sub.add_parser(name, help=text, description=text)
        action.add_argument("--cache-dir", help="the cache folder (default ~/.cache/minitl/features, "
                                                "or $MINITL_CACHE/features)")
        action.add_argument("--json", action="store_true", help="machine-readable output")
        action.set_defaults(handler=handler)
