"""Training across processes with ``backend="gint"`` (issue 19): two gloo processes on
the CPU (gint on the simulator), each configuration against the same run with
``backend="eager"``: losses and gradients of two SGD steps, no recompile after the
first step (``tests/distributed_worker.py``)."""

import socket

import pytest
import torch
import torch.multiprocessing as mp

from gint.kernel.target import SIMULATOR

CONFIGS = [
    "ddp",  # dynamo's DDP optimizer splits the graph at (small) bucket boundaries
    "ddp checkpoint",  # activation checkpointing inside the compiled region
    "fsdp2 per_block bf16",  # fully_shard per block and on the model; bf16 parameters, f32 reduction
]
MORE_CONFIGS = [  # ~20 s each under the simulator: pytest -m slow
    "ddp no_optimize_ddp",
    "ddp autocast",  # autocast to bf16
    "fsdp2 per_block",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(configs: list[str]) -> None:
    import distributed_worker

    mp.spawn(distributed_worker.run, args=(2, _free_port(), configs), nprocs=2, join=True)


needs_cpu_run = [
    pytest.mark.skipif(not SIMULATOR, reason="the CPU run (gloo, simulator); NCCL on GPUs is issue 20"),
    pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without distributed"),
]


@pytest.mark.parametrize("configs", [CONFIGS], ids=["ddp,checkpoint,fsdp2-bf16"])
def test_ddp_and_fsdp2_match_eager(configs):
    _spawn(configs)


@pytest.mark.slow
@pytest.mark.parametrize("configs", [MORE_CONFIGS], ids=["no-ddp-optimizer,autocast,fsdp2"])
def test_more_configurations_match_eager(configs):
    _spawn(configs)


for _test in (test_ddp_and_fsdp2_match_eager, test_more_configurations_match_eager):
    for _mark in needs_cpu_run:
        _mark(_test)
