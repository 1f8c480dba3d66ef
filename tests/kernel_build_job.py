"""The ptxas report for the kernel-quality tests, started when collection ends so that
it runs while the simulator tests do; ``tests/test_kernel_build.py`` waits for it.

By default it checks the PTX the package ships for this exact source (seconds). With
``GINT_KERNEL_FROM_SOURCE=1`` it checks Numba's build of the source instead (about a
minute on one CPU, or seconds when the dev cache holds a build of this exact source;
``GINT_KERNEL_FROM_SOURCE=rebuild`` always builds): do that after changing the kernel,
then ``python -m gint.kernel --prebuild``.

One job per test run: under pytest-xdist every worker collects the kernel tests and any
of them may run them, so the controller hands every worker the same directory
(``conftest.pytest_configure_node``). The first process to claim it (an exclusive file
create) starts the job; the job writes its output and, last, its exit status there, and
every process that needs the report waits for that file. When the run ends the
controller stops a job still going and removes the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMEOUT_S = 1800  # a from-source build takes about a minute; this only ends a hung wait

_directory: Path | None = None
_job: subprocess.Popen | None = None


def command() -> list[str]:
    command = [sys.executable, "-m", "gint.kernel", "--ptxas", "--json"]
    mode = os.environ.get("GINT_KERNEL_FROM_SOURCE", "")
    if mode == "1":
        command.append("--from-source")
    elif mode == "rebuild":
        command.append("--rebuild")
    return command


def start(directory: str | os.PathLike | None = None) -> None:
    """Start the job for this test run in ``directory``, unless a process already did."""
    global _directory, _job
    if _directory is None:
        _directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="gint-kernel-build-"))
    try:
        os.close(os.open(_directory / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    # its own process group, so that stop() can end the build with it
    _job = subprocess.Popen([sys.executable, __file__, str(_directory), *command()], env=env, start_new_session=True)
    (_directory / "pid").write_text(str(_job.pid))


def stop(directory: str | os.PathLike) -> None:
    """End the run's job if it is still going (the tests that wanted it were deselected,
    or the run stopped early): a build nobody waits for would hold a CPU for a minute."""
    directory = Path(directory)
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        if not (directory / "status").exists():
            os.killpg(int((directory / "pid").read_text()), signal.SIGTERM)


def report() -> dict:
    """The ``python -m gint.kernel --ptxas --json`` report (starting the job if needed)."""
    start()
    status = _directory / "status"
    deadline = time.monotonic() + TIMEOUT_S
    while not status.exists():
        if _job is not None and _job.poll() is not None and not status.exists():
            raise AssertionError(f"the kernel build job died (exit {_job.returncode}) without a status")
        assert time.monotonic() < deadline, f"no kernel build report after {TIMEOUT_S} s in {_directory}"
        time.sleep(0.2)
    returncode = int(status.read_text())
    assert returncode in (0, 1), (_directory / "stderr").read_text()[-3000:]
    return json.loads((_directory / "stdout").read_text())


def _run(directory: Path, command: list[str]) -> None:
    """The job itself: ``command`` with its output in files (a full pipe would stall the
    build), then its exit status, written atomically so that a waiter reads all or nothing."""
    returncode = 1000
    try:
        with open(directory / "stdout", "w") as out, open(directory / "stderr", "w") as err:
            returncode = subprocess.run(command, stdout=out, stderr=err).returncode
    finally:
        with contextlib.suppress(FileNotFoundError):  # the test run ended and removed the directory
            (directory / "status.tmp").write_text(str(returncode))
            os.replace(directory / "status.tmp", directory / "status")


if __name__ == "__main__":
    _run(Path(sys.argv[1]), sys.argv[2:])
