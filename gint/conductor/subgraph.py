"""``GintCompiledSubgraph``: the callable that runs one gint subgraph.

Everything graph-dependent is decided at compile time: the executable, each output's
dtype, and its memory order (outputs are laid out like eager PyTorch lays them out,
as the FakeTensor metadata says). Per call it only allocates the outputs on the
inputs' device, looks up the tensor layout for these input shapes and strides (a
dict hit after the first call with them), and launches on the current stream. It
never synchronizes the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gint.host import layout as layouts
from gint.host.disasm import disassemble
from gint.host.executor import Executable


@dataclass(frozen=True)
class OutputSpec:
    dtype: torch.dtype
    order: tuple[int, ...]  # dims from outermost to innermost in memory

    @staticmethod
    def of(meta: torch.Tensor) -> OutputSpec:
        stride = [int(s) if isinstance(s, int) else s.node.hint for s in meta.stride()]
        dims = sorted(range(meta.dim()), key=lambda d: (-stride[d], d))
        return OutputSpec(meta.dtype, tuple(dims))

    def strides(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Dense strides for ``shape`` in this memory order."""
        strides = [0] * len(shape)
        running = 1
        for dim in reversed(self.order):
            strides[dim] = running
            running *= max(shape[dim], 1)
        return tuple(strides)


class GintCompiledSubgraph:
    """Runs one compiled partition: ``outputs = subgraph(*inputs)``."""

    def __init__(self, executable: Executable, inputs: list, outputs: list[OutputSpec], ops: list[str]):
        self.executable = executable
        self.n_inputs = len(inputs)
        self.outputs = outputs
        self.ops = ops
        self._plans: dict[tuple, tuple[tuple[int, ...], list[tuple[int, ...]], layouts.TensorLayout]] = {}

    @property
    def num_tensors(self) -> int:
        return self.n_inputs + len(self.outputs)

    @property
    def disassembly(self) -> str:
        return disassemble(self.executable.program, self.executable.depths)

    def _plan(self, inputs) -> tuple:
        shape = tuple(torch.broadcast_shapes(*(t.shape for t in inputs)))
        out_strides = [spec.strides(shape) for spec in self.outputs]
        shapes = [t.shape for t in inputs] + [shape] * len(self.outputs)
        strides = [t.stride() for t in inputs] + out_strides
        dtypes = [t.dtype for t in inputs] + [spec.dtype for spec in self.outputs]
        layout = layouts.plan(shapes, strides, dtypes, stored=self.executable.stored)
        return shape, out_strides, layout

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = tuple((t.shape, t.stride(), t.dtype) for t in inputs)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(inputs)
        shape, out_strides, layout = plan
        device = inputs[0].device
        outs = tuple(
            torch.empty_strided(shape, strides, dtype=spec.dtype, device=device)
            for spec, strides in zip(self.outputs, out_strides)
        )
        self.executable.launch(layout, [*inputs, *outs])
        return outs

    def __repr__(self) -> str:
        return f"GintCompiledSubgraph({len(self.ops)} ops, {self.num_tensors} tensors)"
