"""``GintCompiledSubgraph``: the callable that runs one gint subgraph.

Everything graph-dependent is decided at compile time: the executable, each output's
dtype, and its memory order (outputs are laid out like eager PyTorch lays them out,
as the FakeTensor metadata says). Per call it only allocates the outputs on the
inputs' device, looks up the tensor layout for these input shapes and strides (a
dict hit after the first call with them), and launches on the current stream. It
never waits for the caller's streams (a new layout's table is copied on gint's own
stream, ``gint.host.executor``). Outputs are fresh tensors, so no autograd version
counter or saved tensor can see the kernel's writes. A layout the kernel cannot take
runs the subgraph's ATen nodes eagerly instead (``gint.conductor.fallback``), with a
warning; so does a signature on which eager measured faster (``gint.conductor.choice``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gint import stats
from gint.conductor import choice
from gint.conductor.reductions import RowShape
from gint.conductor.report import warn_once
from gint.host import layout as layouts
from gint.host.disasm import disassemble
from gint.host.executor import Executable


@dataclass(frozen=True)
class OutputSpec:
    dtype: torch.dtype
    order: tuple[int, ...]  # dims from outermost to innermost in memory
    kind: str = "full"  # the domain's shape, or a row program's per-row result: "keep" / "drop" its reduced dims

    @staticmethod
    def of(meta: torch.Tensor, kind: str = "full") -> OutputSpec:
        stride = [int(s) if isinstance(s, int) else s.node.hint for s in meta.stride()]
        dims = sorted(range(meta.dim()), key=lambda d: (-stride[d], d))
        return OutputSpec(meta.dtype, tuple(dims), kind)

    def shapes(self, domain: tuple[int, ...], reduce_dims) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """This output's shape over ``domain``, and the shape the kernel sees it as
        (a per-row result keeps its reduced dims, of size 1)."""
        if self.kind == "full":
            return domain, domain
        rows = RowShape(domain, tuple(reduce_dims))
        return (rows.keep if self.kind == "keep" else rows.drop), rows.keep

    def strides(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Dense strides for ``shape`` in this memory order."""
        strides = [0] * len(shape)
        running = 1
        for dim in reversed(self.order):
            strides[dim] = running
            running *= max(shape[dim], 1)
        return tuple(strides)


_EAGER = object()  # a plan: run the eager twin (the kernel cannot take this layout)
_DECLINED = object()  # a plan: run the eager twin (it measured faster than gint)


def _with_dims(strides: tuple[int, ...], dims, rank: int) -> tuple[int, ...]:
    """``strides`` with a 0 inserted at each of ``dims`` (size-1 dims of a rank-``rank`` view)."""
    rest = iter(strides)
    return tuple(0 if d in dims else next(rest) for d in range(rank))


class GintCompiledSubgraph:
    """Runs one compiled partition: ``outputs = subgraph(*inputs)``."""

    def __init__(
        self,
        executable: Executable,
        inputs: list,
        outputs: list[OutputSpec],
        ops: list[str],
        reduce_dims=None,
        eager=None,
        choose: bool = False,
    ):
        self.executable = executable
        self.eager = eager  # the same computation in eager PyTorch, for layouts the kernel cannot take
        self.n_inputs = len(inputs)
        self.outputs = outputs
        self.ops = ops
        self.reduce_dims = reduce_dims  # a row program's reduced dims of the domain (None: pointwise)
        self.choose = choose and eager is not None  # time gint against eager per new signature
        self.decisions: dict[tuple, choice.Decision] = {}  # per input signature, when choosing
        self.last_key: tuple | None = None  # the latest call's signature (gint.conductor.balance)
        self._timed: dict[tuple, object] = {}  # a timed signature's plan, whichever way it runs
        # per input (shape, stride, dtype) key: each output's (shape, strides), and the layout
        self._plans: dict[tuple, tuple[list[tuple[tuple[int, ...], tuple[int, ...]]], layouts.TensorLayout]] = {}

    @property
    def num_tensors(self) -> int:
        return self.n_inputs + len(self.outputs)

    @property
    def disassembly(self) -> str:
        return disassemble(self.executable.program, self.executable.depths)

    def _plan_or_eager(self, inputs):
        try:
            return self._plan(inputs)
        except layouts.LayoutError as error:
            if self.eager is None:
                raise
            shapes = [tuple(t.shape) for t in inputs]
            warn_once(f"a gint subgraph ({', '.join(self.ops[:4])}...) runs eagerly for inputs of shapes {shapes}: {error}")
            return _EAGER

    def _plan(self, inputs) -> tuple:
        domain = tuple(torch.broadcast_shapes(*(t.shape for t in inputs)))
        dims = self.reduce_dims or ()
        out_shapes, seen_as = zip(*(spec.shapes(domain, dims) for spec in self.outputs))
        out_strides = [spec.strides(shape) for spec, shape in zip(self.outputs, out_shapes)]
        # a dropped dim has size 1 in the kernel's view: its stride is never used
        kernel_strides = [
            _with_dims(strides, dims, len(domain)) if spec.kind == "drop" else strides
            for spec, strides in zip(self.outputs, out_strides)
        ]
        shapes = [t.shape for t in inputs] + list(seen_as)
        strides = [t.stride() for t in inputs] + kernel_strides
        dtypes = [t.dtype for t in inputs] + [spec.dtype for spec in self.outputs]
        layout = layouts.plan(
            shapes,
            strides,
            dtypes,
            stored=self.executable.stored,
            reduce_dims=self.reduce_dims,
            per_row=self.executable.once_per_row,
        )
        return list(zip(out_shapes, out_strides)), layout

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        key = self.last_key = tuple((t.shape, t.stride(), t.dtype) for t in inputs)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan_or_eager(inputs)
            if plan is not _EAGER and self.choose:
                return self._decide(key, plan, inputs)
            self._plans[key] = plan
        if plan is _EAGER:
            stats.bump("subgraphs_run_eagerly")
            return self.eager(*inputs)
        if plan is _DECLINED:
            return self.eager(*inputs)
        return self._run(plan, inputs)

    def _run(self, plan, inputs) -> tuple[torch.Tensor, ...]:
        out_layouts, layout = plan
        device = inputs[0].device
        outs = tuple(
            torch.empty_strided(shape, strides, dtype=spec.dtype, device=device)
            for spec, (shape, strides) in zip(self.outputs, out_layouts)
        )
        self.executable.launch_planned(layout, [*inputs, *outs])
        return outs

    def _decide(self, key: tuple, plan, inputs) -> tuple[torch.Tensor, ...]:
        """The first call with this signature: time gint against eager and keep the faster."""
        decision, outs = choice.decide(
            lambda: self._run(plan, inputs),
            lambda: self.eager(*inputs),
            inputs[0].device,
            list(self.decisions.values()),
        )
        self.decisions[key] = decision
        if not decision.use_gint:
            stats.bump("subgraphs_declined")
        self._plans[key] = plan if decision.use_gint else _DECLINED
        self._timed[key] = plan
        return outs

    def switch(self, key: tuple, use_gint: bool) -> None:
        """Run the timed signature ``key`` in gint or eagerly from now on."""
        self._plans[key] = self._timed[key] if use_gint else _DECLINED

    def __repr__(self) -> str:
        return f"GintCompiledSubgraph({len(self.ops)} ops, {self.num_tensors} tensors)"
