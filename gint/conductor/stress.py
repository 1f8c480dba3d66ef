"""Compiled functions called from several threads at once, every element checked.

``python -m gint.conductor.stress [--backends gint,eager,inductor] [--iterations N]
[--threads 2,4,8] [--streams]`` runs, for each backend and scenario, ``N`` rounds in
which ``T`` threads start together (a barrier) and call compiled functions:

- ``first``: a function nobody has called yet (a new constant per round), so the
  threads race through dynamo's first compile;
- ``cached``: one function compiled before the threads start, called with its shape;
- ``shapes``: each thread calls with shapes of its own, so recompiles (dynamo's
  automatic dynamic shapes) and new tensor layouts arrive while other threads call;
- ``reduce``: a softmax (a row program) under the same new-shape traffic;
- with ``--streams``, each thread calls on a CUDA stream of its own.

Every result is compared with eager PyTorch on the same thread and stream; a wrong
result reports how many elements differ and by how much, an exception its type,
message and where it was raised. The same loop under ``backend="eager"`` and
``"inductor"`` says whether a failure is gint's or torch.compile's own. Under Numba's
CUDA simulator (no GPU) it runs on small CPU tensors (``tests/test_threads.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import threading
import traceback
from collections import Counter
from dataclasses import dataclass, field

import torch

import gint

SCENARIOS = ("first", "cached", "shapes", "reduce")


@dataclass
class Outcome:
    """What the calls of one backend and scenario did."""

    calls: int = 0
    wrong: list[str] = field(default_factory=list)  # a line per wrong result
    errors: Counter = field(default_factory=Counter)  # "Type: message @ file:line" -> count
    tracebacks: list[str] = field(default_factory=list)  # the first few, whole

    @property
    def clean(self) -> bool:
        return not self.wrong and not self.errors

    def merge(self, other: Outcome) -> None:
        self.calls += other.calls
        self.wrong += other.wrong
        self.errors.update(other.errors)
        self.tracebacks += other.tracebacks[: max(0, 3 - len(self.tracebacks))]


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    last = frames[-1] if frames else None
    place = f" @ {last.filename.rsplit('/', 1)[-1]}:{last.lineno}" if last else ""
    return f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}{place}"


def _compare(got: torch.Tensor, want: torch.Tensor, what: str) -> str | None:
    """None if ``got`` matches ``want`` elementwise (float32 tolerance), else a description."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"{what}: shape/dtype {tuple(got.shape)} {got.dtype}, eager {tuple(want.shape)} {want.dtype}"
    bad = ~torch.isclose(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)
    if not bool(bad.any()):
        return None
    index = bad.nonzero()
    diff = (got - want).abs()[bad]
    return (
        f"{what}: {int(bad.sum())} of {got.numel()} elements differ (max |diff| {float(diff.max()):.3g}, "
        f"first at {tuple(index[0].tolist())})"
    )


def _functions(k: float):
    def chain(x):
        return (x * k).exp() - k

    def softmax(x):
        return torch.softmax(x * k, dim=-1)

    return chain, softmax


def _shape(scenario: str, thread: int, call: int, numel: int) -> tuple[int, ...]:
    if scenario in ("first", "cached"):
        return (numel,)
    if scenario == "reduce":
        return (2 + (thread + call) % 5, 17 + 29 * ((thread * 3 + call) % 7))
    return (numel + 97 * ((thread * 5 + call) % 11),)  # a new shape on most calls


def run_round(backend: str, scenario: str, threads: int, device, numel: int, k: float, streams: bool) -> Outcome:
    """One round: ``threads`` threads start together and each calls twice."""
    chain, softmax = _functions(k)
    fn = softmax if scenario == "reduce" else chain
    compiled = torch.compile(fn, backend=backend)
    if scenario == "cached":
        compiled(torch.randn(numel, device=device))
    start = threading.Barrier(threads)
    outcomes = [Outcome() for _ in range(threads)]

    def work(index: int) -> None:
        outcome = outcomes[index]
        gen = torch.Generator(device=device).manual_seed(1000 * index + int(k * 1000))
        stream = torch.cuda.Stream(device) if streams and device.type == "cuda" else None
        try:
            start.wait()
            with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                for call in range(2):
                    x = torch.randn(_shape(scenario, index, call, numel), device=device, generator=gen)
                    got = compiled(x)
                    want = fn(x)
                    outcome.calls += 1
                    problem = _compare(got, want, f"{backend}/{scenario} thread {index} call {call} {tuple(x.shape)}")
                    if problem:
                        outcome.wrong.append(problem)
            if stream is not None:
                stream.synchronize()
        except BaseException as error:  # noqa: BLE001 - every failure is a finding
            outcome.errors[_where(error)] += 1
            outcome.tracebacks.append("".join(traceback.format_exception(error))[-4000:])

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = Outcome()
    for outcome in outcomes:
        total.merge(outcome)
    return total


def run(backends, scenarios, thread_counts, iterations: int, device, numel: int, streams: bool, progress=print):
    """{(backend, scenario, threads): Outcome} over ``iterations`` rounds each."""
    results = {}
    for backend in backends:
        for scenario in scenarios:
            for threads in thread_counts:
                total = Outcome()
                before = gint.counters()
                for i in range(iterations):
                    torch._dynamo.reset()  # a new constant per round: past 8, dynamo would stop compiling
                    total.merge(run_round(backend, scenario, threads, device, numel, 1.0 + i / 1024, streams))
                    if (i + 1) % 50 == 0 and i + 1 < iterations:  # a run cut short still says what it saw
                        progress(f"  after {i + 1} rounds: " + summary_line(backend, scenario, threads, total))
                results[(backend, scenario, threads)] = total
                after = gint.counters()
                ran = {name: after[name] - before[name] for name in ("launches", "graphs_failed", "subgraphs_run_eagerly")}
                progress(summary_line(backend, scenario, threads, total) + (f"  gint: {ran}" if backend == "gint" else ""))
    return results


def summary_line(backend: str, scenario: str, threads: int, outcome: Outcome) -> str:
    status = "clean" if outcome.clean else f"{len(outcome.wrong)} wrong, {sum(outcome.errors.values())} errors"
    line = f"{backend:<9} {scenario:<7} threads {threads:<2} calls {outcome.calls:<6} {status}"
    for problem in outcome.wrong[:3]:
        line += f"\n    wrong: {problem}"
    for error, count in outcome.errors.most_common(3):
        line += f"\n    {count} x {error}"
    for text in outcome.tracebacks[:1]:
        line += "\n" + text
    return line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gint.conductor.stress", description=__doc__)
    parser.add_argument("--backends", default="gint,eager,inductor")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--threads", default="2,4,8")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--numel", type=int, default=None, help="elements per call (default: 300 sim, 2**20+3 GPU)")
    parser.add_argument("--streams", action="store_true", help="each thread on a CUDA stream of its own")
    args = parser.parse_args(argv)
    from gint.conductor import register_backend
    from gint.kernel.target import SIMULATOR

    register_backend()
    device = torch.device("cpu" if SIMULATOR else "cuda")
    numel = args.numel or (300 if SIMULATOR else (1 << 20) + 3)
    results = run(
        args.backends.split(","),
        args.scenarios.split(","),
        [int(t) for t in args.threads.split(",")],
        args.iterations,
        device,
        numel,
        args.streams,
    )
    return 0 if all(outcome.clean for outcome in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
