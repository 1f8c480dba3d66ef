"""``python -m gint.fuzz --cases N [--seed S] [--seconds T] [--device cuda]``: random and mutated
programs through the verifier and the kernel, against the reference machine.

Each case ends one of three ways, all of them fine:

- ``rejected``: the verifier refuses the program, naming its rule;
- ``refused``: ``executor.run`` refuses the tensors with a clear error (a layout the
  kernel cannot take);
- ``ran``: the kernel's results equal the reference's (bit for bit where the program
  is exact in float32, within a tolerance where it calls math functions), and nothing
  outside the tensors changed (canaries; under the simulator every load and store is
  also checked against the tensors' byte ranges).

Anything else (a mismatch, a damaged canary, an access outside the tensors, another
exception) is a failure: its seed is printed and the exit status is 1. Without a GPU
(or with ``NUMBA_ENABLE_CUDASIM=1``) the cases run under Numba's CUDA simulator on
small tensors.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import torch


@dataclass
class Summary:
    cases: int = 0
    rejected: collections.Counter = field(default_factory=collections.Counter)  # by verifier rule
    refused: int = 0
    ran_exact: int = 0
    ran_tolerant: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.ran_exact + self.ran_tolerant

    def __str__(self) -> str:
        rules = ", ".join(f"{rule} {n}" for rule, n in self.rejected.most_common())
        return (
            f"{self.cases} cases: {self.ran} ran ({self.ran_exact} bit-exact, {self.ran_tolerant} within tolerance), "
            f"{sum(self.rejected.values())} rejected by the verifier ({rules or 'none'}), "
            f"{self.refused} refused at launch, {len(self.failures)} failures"
        )


def _same(got: torch.Tensor, want: torch.Tensor, exact: bool, stable: torch.Tensor | None = None) -> str | None:
    """None if ``got`` matches ``want``; else what differs. ``stable``: where an inexact
    program's result does not hinge on a math function's last bits (compared there only)."""
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"dtype/shape {got.dtype}{tuple(got.shape)} vs {want.dtype}{tuple(want.shape)}"
    if exact or not got.dtype.is_floating_point:
        if got.dtype.is_floating_point:
            nan_g, nan_w = torch.isnan(got), torch.isnan(want)
            if not torch.equal(nan_g, nan_w):
                return "nan in different places"
            ints = {2: torch.int16, 4: torch.int32}[got.element_size()]
            g, w = got[~nan_g].contiguous().view(ints), want[~nan_w].contiguous().view(ints)
        else:
            g, w = got, want
        if not torch.equal(g, w):
            bad = (g != w).nonzero()[:3].flatten().tolist()
            return f"{int((g != w).sum())} element(s) differ (bits), e.g. at {bad}"
        return None
    bad = ~_close(got, want) & (stable if stable is not None else True)
    if bad.any():
        where = bad.nonzero()[:3].tolist()
        return f"{int(bad.sum())} of {bad.numel()} element(s) differ, e.g. at {where}: {got[bad][:3].tolist()} vs {want[bad][:3].tolist()}"
    return None


_TOLERANCE = {torch.float32: (1e-3, 1e-3), torch.float16: (2e-2, 1e-2), torch.bfloat16: (4e-2, 1e-2)}


def _close(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise: equal, both nan, or within the dtype's tolerance."""
    if not a.dtype.is_floating_point:
        return a == b
    rtol, atol = _TOLERANCE[a.dtype]
    a, b = a.double(), b.double()
    return (a == b) | (torch.isnan(a) & torch.isnan(b)) | ((a - b).abs() <= atol + rtol * b.abs())


# Relative moves of the math functions' results (about 1 and 8 ulps, both ways): a result
# is compared only where none of them moves it beyond the tolerance, since libdevice and
# torch may differ in a math function's last bits.
PERTURBATIONS = (2.0**-23, -(2.0**-23), 2.0**-20, -(2.0**-20))


def run_case(seed: int, device: torch.device, summary: Summary) -> None:
    from gint.fuzz import programs, reference
    from gint.host import executor
    from gint.host.program import Program
    from gint.host.verifier import VerificationError, verify
    from gint.kernel.target import SIMULATOR

    summary.cases += 1
    case = programs.random_case(seed, gpu=device.type == "cuda")
    program = Program(case.code, tuple(f"t{i}" for i in range(len(case.tensors))))
    try:
        verify(program)
    except VerificationError as error:
        summary.rejected[error.rule] += 1
        return
    generator = torch.Generator().manual_seed(seed)
    arena = programs.Arena(case.tensors, device, generator)
    inputs = [t.cpu().clone() for t in arena.tensors]
    try:
        if SIMULATOR:
            from gint.kernel.memory import guarded

            with guarded(arena.spans()):
                executor.run(program, arena.tensors)
        else:
            executor.run(program, arena.tensors)
            torch.cuda.synchronize(device)
    except executor.ExecutionError:
        summary.refused += 1
        return
    except Exception as error:  # noqa: BLE001 - the fuzzer reports, it does not stop
        summary.failures.append((seed, f"{type(error).__name__}: {str(error)[:300]}"))
        return
    damaged = arena.canaries_intact()
    if damaged:
        summary.failures.append((seed, f"canaries around slot(s) {damaged} changed"))
        return
    expected, marks = reference.execute(program, inputs, marks=True)
    if not case.exact:  # results that move when a math function's last bits do are not compared
        nudged = [reference.execute(program, inputs, perturb=p) for p in PERTURBATIONS]
    for slot in sorted(program.stored_slots):
        stable = None
        if not case.exact:
            reliable = marks[slot] < reference.UNRELIABLE
            stable = functools.reduce(torch.logical_and, [_close(n[slot], expected[slot]) for n in nudged], reliable)
        problem = _same(arena.tensors[slot].cpu(), expected[slot], case.exact, stable)
        if problem:
            summary.failures.append((seed, f"slot {slot} ({case.tensors[slot]}): {problem}"))
            return
    if case.exact:
        summary.ran_exact += 1
    else:
        summary.ran_tolerant += 1


def fuzz(cases: int, seed: int = 0, device: str | None = None, progress: bool = False, seconds: float | None = None) -> Summary:
    """Run ``cases`` cases, seeds ``seed`` .. ``seed + cases - 1``; with ``seconds``, stop
    at the first case boundary after that long (a time budget on a lent machine)."""
    from gint.kernel.target import SIMULATOR

    target = torch.device("cpu" if SIMULATOR else (device or "cuda"))
    summary = Summary()
    started = time.monotonic()
    for k in range(cases):
        if seconds is not None and time.monotonic() - started > seconds:
            break
        run_case(seed + k, target, summary)
        if progress and (k + 1) % 1000 == 0:
            print(f"  {k + 1} cases, {time.monotonic() - started:.0f} s: {summary}", flush=True)
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gint.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long, even before --cases")
    parser.add_argument("--device", default=None, help="a CUDA device (default cuda); ignored under the simulator")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # the simulator's x / 0, as IEEE on the GPU
    if "NUMBA_ENABLE_CUDASIM" not in os.environ and not torch.cuda.is_available():
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    started = time.monotonic()
    summary = fuzz(args.cases, args.seed, args.device, progress=True, seconds=args.seconds)
    print(f"{summary} in {time.monotonic() - started:.1f} s")
    for seed, problem in summary.failures[:50]:
        print(f"  FAIL seed {seed}: {problem}")
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
