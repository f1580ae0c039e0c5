"""``python -m minitl.bench --worker SPEC.json``: one worker process of a ``minitl bench`` run
(the command itself is ``minitl bench`` / ``python -m minitl bench``)."""
import json
import sys
from pathlib import Path

from .runner import worker

if len(sys.argv) != 3 or sys.argv[1] != "--worker":
    print("usage: python -m minitl.bench --worker SPEC.json (a worker of a run); "
          "the benchmark itself: minitl bench --help", file=sys.stderr)
    sys.exit(2)
worker(json.loads(Path(sys.argv[2]).read_text()))
