"""Backend options, as given to ``torch.compile(..., backend="gint", options={...})``."""

from __future__ import annotations

from dataclasses import dataclass, fields

from gint.isa import MAX_SLOTS


@dataclass(frozen=True)
class Options:
    """Validated options of the gint backend.

    - ``max_tensors``: most tensors one subgraph may read and write (1-8, default 8).
    - ``min_ops``: smallest number of operators worth a gint launch; smaller groups
      run eagerly (default 1).
    - ``cuda_graphs``: replay compiled graphs as CUDA graphs through torch's CUDA
      graph trees (default False; see ``gint.conductor.graphs``).
    - ``direct_inference``: trace inference graphs that need nothing of AOT autograd
      (no gradients, no mutation) with ``make_fx`` and call them without AOT
      autograd's per-call wrapper (default True; see ``gint.conductor.inference``).
    - ``eager_when_faster``: on a GPU, the first call of a subgraph with a new input
      signature times it in gint and eagerly and keeps the faster, so gint never makes
      a subgraph slower than eager (default True; False always runs gint, for
      benchmarks of the kernel; see ``gint.conductor.choice``).
    - ``graph_balance``: with ``eager_when_faster``, after its subgraphs have decided a
      compiled graph times itself once and switches subgraphs between gint and eager
      where that lowers the larger of its host and device time (default False: not yet
      measured on a GPU; see ``gint.conductor.balance``).
    """

    max_tensors: int = MAX_SLOTS
    min_ops: int = 1
    cuda_graphs: bool = False
    direct_inference: bool = True
    eager_when_faster: bool = True
    graph_balance: bool = False

    @classmethod
    def parse(cls, options: dict | None) -> Options:
        options = dict(options or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(f"unknown gint option(s) {unknown}; known: {sorted(known)}")
        for name, value in options.items():
            expected = known[name].type
            if expected == "bool" and not isinstance(value, bool):
                raise TypeError(f"gint option {name!r} must be a bool, got {value!r}")
            if expected == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"gint option {name!r} must be an int, got {value!r}")
        parsed = cls(**options)
        if not 2 <= parsed.max_tensors <= MAX_SLOTS:
            raise ValueError(f"gint option 'max_tensors' must be in 2..{MAX_SLOTS}, got {parsed.max_tensors}")
        if parsed.min_ops < 1:
            raise ValueError(f"gint option 'min_ops' must be >= 1, got {parsed.min_ops}")
        return parsed
