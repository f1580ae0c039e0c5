"""``minitl info``: versions, the array backend, the BLAS in use, and whether a GPU is usable."""
from __future__ import annotations

import importlib
import json
import platform

import numpy

from .. import __version__, backend


def _version(module: str) -> str:
    """A module's version, or why there is none (the bench on a bare GPU machine has no SciPy)."""
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"


def collect() -> dict:
    info = {
        "minitl": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": _version("scipy"),
        "backend": backend.get_backend().name,
        "backends": backend.available(),
        "blas": backend.blas_info(),
    }
    gpu = getattr(backend, "gpu_status", None)
    if gpu is not None:
        info["gpu"] = gpu()
    return info


def run(args) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            if key == "gpu" and isinstance(value, dict):  # usable or not, and why
                value = ("usable: " if value["usable"] else "not usable: ") + value["reason"]
            print(f"{key:<{width}}  {value}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("info", help="versions, array backend, BLAS and GPU status")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(handler=run)
