"""Never slower than eager (issue 30): a subgraph runs in gint only for input signatures
on which gint measured faster than eager (``gint.conductor.choice``). Under the
simulator nothing can be timed, so these tests force the times; the GPU test times."""

import pytest
import torch

import gint
from gint.conductor import choice, register_backend
from gint.conductor.report import Report, recording

register_backend()


def f(x, y):
    return torch.relu(x * y - 0.5) / (y.abs() + 1)


def _force(monkeypatch, gint_us: float, eager_us: float) -> list:
    calls = []

    def timer(run_gint, run_eager):
        calls.append(1)
        return choice.Timing.flat(gint_us, eager_us), run_gint(), run_eager()

    monkeypatch.setattr(choice, "timer", timer)
    return calls


def _inputs(target, n):
    return torch.randn(n, device=target.device), torch.randn(n, device=target.device)


@pytest.mark.parametrize("faster", ["gint", "eager"])
def test_the_faster_way_runs_and_results_match_eager(target, monkeypatch, faster):
    timed = _force(monkeypatch, *((1.0, 2.0) if faster == "gint" else (2.0, 1.0)))
    torch._dynamo.reset()
    fast = torch.compile(f, backend="gint")
    x, y = _inputs(target, target.numel)
    declined = gint.counters()["subgraphs_declined"]
    first = fast(x, y)  # decides: both ways run, the chosen one's outputs come back
    launches = gint.counters()["launches"]
    for _ in range(2):
        torch.testing.assert_close(fast(x, y), f(x, y))
    torch.testing.assert_close(first, f(x, y))
    assert len(timed) == 1  # decided once per signature
    assert gint.counters()["subgraphs_declined"] - declined == (faster == "eager")
    assert (gint.counters()["launches"] - launches) == (2 if faster == "gint" else 0)


def test_explain_lists_both_times(target, monkeypatch):
    _force(monkeypatch, 30.0, 10.0)
    report = gint.explain(f, *_inputs(target, 64))
    text = str(report)
    assert "eager: gint 30.0 us, eager 10.0 us" in text, text


def test_each_new_signature_is_timed_until_enough_agree(target, monkeypatch):
    timed = _force(monkeypatch, 2.0, 1.0)
    torch._dynamo.reset()
    fast = torch.compile(f, backend="gint", dynamic=True)
    with recording(Report()) as report:
        for n in range(10, 10 + choice.MAX_TIMED + 3):
            x, y = _inputs(target, n)
            torch.testing.assert_close(fast(x, y), f(x, y))
    assert len(timed) == choice.MAX_TIMED  # later signatures follow the agreed choice
    (subgraph,) = [sub.callable for sub in report.subgraphs]
    untimed = [d for d in subgraph.decisions.values() if d.gint_us is None]
    assert len(untimed) == 3 and all(not d.use_gint and "as all" in d.reason for d in untimed)


def test_the_option_turns_it_off(target, monkeypatch):
    timed = _force(monkeypatch, 2.0, 1.0)
    torch._dynamo.reset()
    fast = torch.compile(f, backend="gint", options={"eager_when_faster": False})
    launches = gint.counters()["launches"]
    x, y = _inputs(target, 50)
    torch.testing.assert_close(fast(x, y), f(x, y))
    assert not timed and gint.counters()["launches"] - launches == 1


def test_nothing_is_timed_off_the_gpu(monkeypatch):
    monkeypatch.setattr(choice, "timer", None)
    decision, out = choice.decide(lambda: "gint", lambda: "eager", torch.device("cpu"), [])
    assert decision.use_gint and out == "gint" and decision.gint_us is None


@pytest.mark.gpu
def test_on_the_gpu_a_head_transposed_copy_is_timed_and_correct(target, monkeypatch):
    if target.name == "sim":
        pytest.skip("times a GPU")
    monkeypatch.setattr(choice, "timer", None)
    x = torch.randn(8, 512, 12, 64, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    report = gint.explain(lambda t: t * 0.125, x)
    (sub,) = report.subgraphs
    ((_, decision),) = sub.callable.decisions.items()
    assert decision.gint_us > 0 and decision.eager_us > 0
    torch.testing.assert_close(torch.compile(lambda t: t * 0.125, backend="gint")(x), x * 0.125)


class _FakeEvent:
    """A CUDA event stand-in on the CPU machine: 'records' a per-way device time."""

    clock = [0.0]
    device_ms = {}

    def __init__(self, enable_timing=False):
        self.at = None

    def record(self):
        self.at = _FakeEvent.clock[0]

    def elapsed_time(self, end):
        return end.at - self.at

    def synchronize(self):
        pass


def test_time_both_charges_the_slower_of_host_and_device(monkeypatch):
    """The real timer's arithmetic, with fake events: gint 0.05 ms of device time per call,
    eager 0.02 ms; eager's host issue time (a sleep) dominates its cost."""
    import time as clock

    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "_sleep", lambda cycles: None)

    def run_gint():
        _FakeEvent.clock[0] += 0.05
        return "g"

    def run_eager():
        clock.sleep(0.002)  # 2 ms of host time
        _FakeEvent.clock[0] += 0.02
        return "e"

    timing, g, e = choice.time_both(run_gint, run_eager)
    assert (g, e) == ("g", "e")
    assert timing.gint == pytest.approx(50.0, abs=1.0)  # device time: host issue is shorter
    assert timing.eager >= 2000.0  # host issue time: longer than its 20 us of device time
    assert timing.eager_device == pytest.approx(20.0, abs=1.0) and timing.gint_host < 1000.0


def test_a_timer_that_fails_leaves_gint_running(monkeypatch):
    def broken(run_gint, run_eager):
        raise RuntimeError("no events here")

    monkeypatch.setattr(choice, "timer", broken)
    decision, out = choice.decide(lambda: "gint", lambda: "eager", torch.device("cuda"), [])
    assert decision.use_gint and out == "gint" and "no events here" in decision.reason
