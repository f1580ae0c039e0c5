"""minitl.host_memory: freed host memory is kept for reuse (glibc), unless the environment says otherwise."""
import json
import platform
import subprocess
import sys

import pytest

from minitl import host_memory

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the thresholds are glibc's (elsewhere keep_freed_memory does nothing)")

# a fresh process: import minitl, free three 16 MiB arrays, allocate them again, count the page faults
PROBE = """
import json, resource
import numpy as np
import minitl
from minitl import host_memory
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
arrays = [np.ones(4 * 2**20, np.float32) for _ in range(3)]
del arrays
before = faults()
arrays = [np.ones(4 * 2**20, np.float32) for _ in range(3)]
print(json.dumps({"faults": faults() - before, "status": host_memory.status()}))
"""


def _probe(**env):
    import os

    environment = {k: v for k, v in os.environ.items()
                   if not (k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", host_memory.ENVIRONMENT))}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**environment, **env}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@glibc_only
def test_import_keeps_freed_memory_so_reallocation_needs_no_fresh_pages():
    kept = _probe()
    assert kept["status"].startswith("freed memory kept")
    assert kept["faults"] < 50  # 48 MiB again from the heap: a fresh mapping would fault on every page it touches


@glibc_only
def test_environment_turns_it_off_or_takes_charge():
    assert _probe(MINITL_KEEP_FREED_MEMORY="0")["status"] == "malloc defaults"
    assert _probe(MALLOC_TRIM_THRESHOLD_="131072")["status"].startswith("malloc as the environment sets it")


@glibc_only
def test_keep_freed_memory_can_be_switched_back():
    try:
        assert host_memory.keep_freed_memory(False) is False
        assert host_memory.status() in ("malloc defaults", "malloc as the environment sets it (MALLOC_* / GLIBC_TUNABLES)")
        assert host_memory.keep_freed_memory(True) is True
        assert host_memory.status().startswith("freed memory kept")
    finally:
        host_memory.configure_from_environment()
