"""One rank of ``tests/test_distributed.py``: each configuration trains a small block for
two SGD steps with ``backend="eager"`` and with ``backend="gint"`` (the simulator on the
CPU) and compares losses and gradients; a mismatch raises, which ``mp.spawn`` reports."""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

WIDTH = 24
BUCKET_BYTES = 8192
BLOCKS = 2  # FSDP2 shards per block; every launch costs simulator time


class Block(torch.nn.Module):
    def __init__(self, use_checkpoint: bool = False):
        super().__init__()
        self.norm = torch.nn.LayerNorm(WIDTH)
        self.up = torch.nn.Linear(WIDTH, 2 * WIDTH)
        self.down = torch.nn.Linear(2 * WIDTH, WIDTH)
        self.use_checkpoint = use_checkpoint

    def inner(self, x):
        return x + self.down(F.gelu(self.up(self.norm(x))))

    def forward(self, x):
        if self.use_checkpoint:
            return checkpoint(self.inner, x, use_reentrant=False)
        return self.inner(x)


class Model(torch.nn.Module):
    def __init__(self, use_checkpoint: bool = False):
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block(use_checkpoint) for _ in range(BLOCKS)])
        self.head = torch.nn.Linear(WIDTH, 1)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(torch.tanh(x)).float().pow(2).mean()


def _wrap(model: Model, config: str) -> torch.nn.Module:
    if config.startswith("ddp"):
        from torch.nn.parallel import DistributedDataParallel

        # small buckets (a block's parameters are ~10 KB): dynamo's DDP optimizer splits the
        # graph at bucket boundaries; its first bucket must not be larger than the rest
        dist._DEFAULT_FIRST_BUCKET_BYTES = BUCKET_BYTES
        return DistributedDataParallel(model, bucket_cap_mb=BUCKET_BYTES / 2**20)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if "bf16" in config else None
    kwargs = {"mesh": mesh} | ({"mp_policy": policy} if policy else {})
    if "per_block" in config:
        for block in model.blocks:
            fully_shard(block, **kwargs)
    fully_shard(model, **kwargs)
    return model


def train(config: str, backend: str, rank: int) -> tuple[list[float], list[torch.Tensor], int]:
    """Losses of two SGD steps, the gradients after each step, and dynamo's compile count."""
    torch.manual_seed(0)
    model = _wrap(Model(use_checkpoint="checkpoint" in config), config)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    torch._dynamo.reset()
    torch._dynamo.config.optimize_ddp = "no_optimize_ddp" not in config
    compiled = torch.compile(model, backend=backend)
    losses, grads, compiles = [], [], []
    generator = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    for _ in range(2):
        x = torch.randn(4, 6, WIDTH, generator=generator)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if "autocast" in config else contextlib.nullcontext()
        with autocast:
            loss = compiled(x)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([_full(p.grad).flatten().float() for p in model.parameters()]))
        optimizer.step()
        optimizer.zero_grad()
        compiles.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    return losses, grads, compiles[-1] - compiles[0]


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def run(rank: int, world: int, port: int, configs: list[str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    from gint.conductor import register_backend

    register_backend()
    import gint

    try:
        for config in configs:
            want_losses, want_grads, _ = train(config, "eager", rank)
            launches = gint.counters()["launches"]
            losses, grads, recompiles = train(config, "gint", rank)
            assert gint.counters()["launches"] > launches, f"{config}: gint launched nothing"
            assert recompiles == 0, f"{config}: {recompiles} recompile(s) after the first step"
            low = "bf16" in config or "autocast" in config
            tol = {"rtol": 2e-2, "atol": 2e-2} if low else {"rtol": 1e-4, "atol": 1e-5}
            torch.testing.assert_close(torch.tensor(losses), torch.tensor(want_losses), **tol, msg=config)
            for got, want in zip(grads, want_grads):
                torch.testing.assert_close(got, want, **tol, msg=lambda m, c=config: f"{c}: {m}")
    finally:
        dist.destroy_process_group()
