"""The ``minitl`` command: parses arguments and calls the library; no math, no format parsing.

Each sub-command lives in its own module here with a ``register(subparsers)`` function.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__

COMMAND_MODULES = ["info", "demo", "weights", "train", "evaluate", "multitask", "cache", "bench", "inspect", "embeddings"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minitl",
        description="minitl: a from-scratch deep-learning engine for transfer learning (NumPy / CuPy).",
    )
    parser.add_argument("--version", action="version", version=f"minitl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    args.argv = argv  # what was typed: `--resume` tells flags given again from defaults
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        # on its own line (a progress bar may be mid-line), then what was kept and how to go on
        hint = getattr(args, "on_interrupt", None)
        sys.stdout.flush()
        print("\n" + (hint() if hint else "interrupted"), file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # the reader went away (`minitl weights inspect F | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print(f"minitl {args.command}: error: out of memory (the input asks for more than this machine has)",
              file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # user-facing failures (bad file, missing data, wrong shape) end in one clear line
        print(f"minitl {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
