"""What the backend did with a function: ``gint.explain``'s report."""

from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SubgraphReport:
    ops: list[str]  # ATen operator names, graph order
    num_tensors: int  # tensors crossing the subgraph boundary
    disassembly: str
    callable: object = field(default=None, repr=False, compare=False)  # its GintCompiledSubgraph


@dataclass(frozen=True)
class FallbackReport:
    node: str
    op: str
    reason: str


@dataclass(frozen=True)
class MapNode:
    """One node of a compiled graph as partitioned: ``subgraph`` is the index of its gint
    subgraph in the report (None: it runs eagerly, for ``reason`` if it computes)."""

    name: str
    label: str  # the operator's short name, "input" or "output"
    inputs: tuple[str, ...]  # names of the nodes it reads
    subgraph: int | None
    reason: str | None


@dataclass
class Report:
    """Subgraphs that ran in gint, nodes that ran eagerly (with reasons), coverage."""

    subgraphs: list[SubgraphReport] = field(default_factory=list)
    fallback: list[FallbackReport] = field(default_factory=list)
    graphs: int = 0
    compute_nodes: int = 0
    gint_nodes: int = 0
    partition_maps: list[tuple[MapNode, ...]] = field(default_factory=list)  # one per graph (gint.viz)

    @property
    def coverage(self) -> float:
        """Share of compute nodes that ran in gint (1.0 for a graph without compute)."""
        return self.gint_nodes / self.compute_nodes if self.compute_nodes else 1.0

    def __str__(self) -> str:
        lines = [
            f"gint: {self.graphs} graph(s), {len(self.subgraphs)} gint subgraph(s), "
            f"coverage {self.coverage:.0%} ({self.gint_nodes}/{self.compute_nodes} compute nodes)"
        ]
        if self.subgraphs:
            lines.append(f"  {'#':>3}  {'tensors':>7}  ops")
            for i, sub in enumerate(self.subgraphs):
                lines.append(f"  {i:>3}  {sub.num_tensors:>7}  {', '.join(sub.ops)}")
                for key, decision in getattr(sub.callable, "decisions", {}).items():
                    if decision.gint_us is None and decision.use_gint:
                        continue  # nothing was timed (off the GPU): nothing to report
                    shapes = ", ".join(str(tuple(shape)) for shape, _, _ in key)
                    lines.append(f"  {'':>3}  {'':>7}  inputs {shapes}: {decision}")
        if self.fallback:
            lines.append(f"  eager: {'node':<24} {'op':<32} reason")
            for fb in self.fallback:
                lines.append(f"         {fb.node:<24} {fb.op:<32} {fb.reason}")
        return "\n".join(lines)


# The report that backend compilations append to while gint.explain runs. Process-wide,
# not per thread: on CUDA the autograd engine compiles backward graphs on its own thread.
_active: list[Report] = []
_lock = threading.Lock()


def active_report() -> Report | None:
    with _lock:
        return _active[-1] if _active else None


class recording:
    """``with recording(report):`` compilations in this process append to ``report``."""

    def __init__(self, report: Report):
        self.report = report

    def __enter__(self) -> Report:
        with _lock:
            _active.append(self.report)
        return self.report

    def __exit__(self, *exc) -> None:
        with _lock:
            _active.remove(self.report)


_warned: set[str] = set()


def warn_once(message: str) -> None:
    """A ``UserWarning``, once per distinct message in this process."""
    with _lock:
        if message in _warned:
            return
        _warned.add(message)
    warnings.warn(message, stacklevel=2)
