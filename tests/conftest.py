"""Test configuration: without a GPU, run the real kernel under Numba's CUDA simulator.

NUMBA_ENABLE_CUDASIM must be set before numba is first imported, so this runs before
anything imports gint. Tests take a ``target`` fixture: ``sim`` (CPU tensors through
the simulated kernel, small sizes) or ``gpu`` (CUDA tensors, large sizes, marked
``gpu``: run them with ``pytest -m gpu`` on a GPU machine).
"""

import os
import shutil
import tempfile

import torch

if "NUMBA_ENABLE_CUDASIM" not in os.environ and not torch.cuda.is_available():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

from dataclasses import dataclass  # noqa: E402

import pytest  # noqa: E402

from gint.kernel.target import SIMULATOR  # noqa: E402


@dataclass(frozen=True)
class Target:
    name: str
    device: torch.device
    numel: int  # a representative tensor size for this target
    rows: int  # a representative 2-D shape: rows x cols
    cols: int


SIM = Target("sim", torch.device("cpu"), numel=300, rows=3, cols=70)
GPU = Target("gpu", torch.device("cuda", 0), numel=(1 << 22) + 3, rows=1027, cols=4099)


@pytest.fixture(params=[pytest.param("sim"), pytest.param("gpu", marks=pytest.mark.gpu)])
def target(request) -> Target:
    if request.param == "sim":
        if not SIMULATOR:
            pytest.skip("simulator disabled (NUMBA_ENABLE_CUDASIM unset on a GPU machine)")
        return SIM
    if SIMULATOR or not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    return GPU


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _gint_runs_every_subgraph(monkeypatch):
    """Tests check gint's kernel: on a GPU, a subgraph eager measures faster would run
    eagerly (``gint.conductor.choice``), making what runs depend on timing. Tests of that
    choice set ``choice.timer`` themselves."""
    from gint.conductor import choice

    monkeypatch.setattr(choice, "timer", lambda run_gint, run_eager: (choice.Timing.flat(0.0, 1.0), run_gint(), None))


_BUILD_DIR = pytest.StashKey[str]()


def pytest_configure(config):
    """The controller (or a run without xdist) makes the directory of this run's kernel
    build job (``kernel_build_job``); xdist workers get it through ``workerinput``."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        config.stash[_BUILD_DIR] = tempfile.mkdtemp(prefix="gint-kernel-build-")
    elif "gint_kernel_build_dir" in workerinput:
        config.stash[_BUILD_DIR] = workerinput["gint_kernel_build_dir"]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    node.workerinput["gint_kernel_build_dir"] = node.config.stash[_BUILD_DIR]


def pytest_unconfigure(config):
    if getattr(config, "workerinput", None) is None and _BUILD_DIR in config.stash:
        import kernel_build_job

        kernel_build_job.stop(config.stash[_BUILD_DIR])
        shutil.rmtree(config.stash[_BUILD_DIR], ignore_errors=True)


def pytest_collection_finish(session):
    """Start the kernel build in the background if its tests are going to run here; under
    xdist every worker asks, and the first one starts the run's single job."""
    if any("ptxas_report" in getattr(item, "fixturenames", ()) for item in session.items):
        import kernel_build_job

        kernel_build_job.start(session.config.stash.get(_BUILD_DIR, None))
