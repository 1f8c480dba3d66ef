"""The ptxas report for the kernel-quality tests, started when collection ends so that
it runs while the simulator tests do; ``tests/test_kernel_build.py`` waits for it.

By default it checks the PTX the package ships for this exact source (seconds). With
``GINT_KERNEL_FROM_SOURCE=1`` it builds the kernel with Numba first (minutes on one
CPU): do that after changing the kernel, then ``python -m gint.kernel --prebuild``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

_job: subprocess.Popen | None = None
_out = tempfile.TemporaryFile("w+")  # files, not pipes: a full pipe would stall the build
_err = tempfile.TemporaryFile("w+")


def start() -> None:
    global _job
    if _job is None:
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
        command = [sys.executable, "-m", "gint.kernel", "--ptxas", "--json"]
        if os.environ.get("GINT_KERNEL_FROM_SOURCE") == "1":
            command.append("--from-source")
        _job = subprocess.Popen(command, stdout=_out, stderr=_err, text=True, env=env)


def report() -> dict:
    """The ``python -m gint.kernel --ptxas --json`` report (starting the build if needed)."""
    start()
    _job.wait()
    _out.seek(0)
    _err.seek(0)
    assert _job.returncode in (0, 1), _err.read()[-3000:]
    return json.loads(_out.read())
