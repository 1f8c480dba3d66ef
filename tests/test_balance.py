"""The per-subgraph choice revisited against the whole graph (``gint.conductor.balance``,
option ``graph_balance``): which signatures switch for a host-bound and a device-bound
graph, and that a switched subgraph runs the other way with eager's results."""

import pytest
import torch

import gint
from gint.conductor import backend, choice, register_backend
from gint.conductor.balance import Candidate, GraphBalance, rebalance

register_backend()

# a layer-norm-like signature timed on the H100 (2026-12-06): gint one launch, eager 4 kernels
LAYER_NORM = choice.Timing(gint_host=20.0, gint_device=72.0, eager_host=50.0, eager_device=35.0)


def _declined(n):
    return [Candidate(object(), (k,), LAYER_NORM, use_gint=False) for k in range(n)]


def test_a_host_bound_graph_takes_the_launches_that_save_host_time():
    taken = rebalance(_declined(18), host_us=4000.0, device_us=1500.0)
    assert len(taken) == 18  # host 4000 -> 3460, device 1500 -> 2166: still host-bound


def test_switching_stops_where_the_device_would_become_the_bound():
    taken = rebalance(_declined(18), host_us=2000.0, device_us=1700.0)
    # each switch: host -30, device +37; the max falls until they cross
    assert 0 < len(taken) < 18
    host, device = 2000.0 - 30.0 * len(taken), 1700.0 + 37.0 * len(taken)
    assert max(host, device) < 2000.0
    one_more = max(host - 30.0, device + 37.0)
    assert one_more >= max(host, device) - 1.0


def test_a_device_bound_graph_hands_slow_kernels_to_eager():
    kept = [Candidate(object(), (k,), LAYER_NORM, use_gint=True) for k in range(5)]
    taken = rebalance(kept, host_us=1000.0, device_us=5000.0)
    assert len(taken) == 5  # each: device -37, host +30


def test_nothing_switches_without_a_gain():
    assert rebalance(_declined(3), host_us=1000.0, device_us=3000.0) == []
    assert rebalance([], host_us=1.0, device_us=2.0) == []


def f(x, y):
    return torch.relu(x * y - 0.5) / (y.abs() + 1)


def test_a_switched_subgraph_runs_the_other_way_with_eagers_results(target, monkeypatch):
    monkeypatch.setattr(
        choice, "timer", lambda run_gint, run_eager: (LAYER_NORM, run_gint(), run_eager())
    )  # eager's max(host, device) 50 < gint's 72: declined
    made = []
    real = backend.compile_forward

    def spy(gm, **kwargs):
        made.append(real(gm, **kwargs))
        return made[-1]

    monkeypatch.setattr(backend, "compile_forward", spy)
    torch._dynamo.reset()
    fn = torch.compile(f, backend="gint", options={"graph_balance": True})
    x, y = torch.randn(target.numel, device=target.device), torch.randn(target.numel, device=target.device)
    torch.testing.assert_close(fn(x, y), f(x, y))
    (balance,) = made
    assert isinstance(balance, GraphBalance)
    candidates = balance.candidates()
    assert [c.use_gint for c in candidates] == [False]
    launches = gint.counters()["launches"]
    balance.apply(rebalance(candidates, host_us=4000.0, device_us=100.0))  # host-bound: take gint
    torch.testing.assert_close(fn(x, y), f(x, y))
    assert gint.counters()["launches"] - launches == 1
    assert "graph balance" in str(candidates[0].subgraph.decisions[candidates[0].key])


def test_the_option_is_off_by_default():
    assert backend.Options.parse(None).graph_balance is False
    with pytest.raises(TypeError):
        backend.Options.parse({"graph_balance": 1})
