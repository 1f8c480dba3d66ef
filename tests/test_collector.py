"""Python's garbage collector is paused while gint compiles and restored after, whatever
state the caller left it in (gint.conductor.backend.collector_paused)."""

import gc

import pytest
import torch

from gint.conductor import backend, register_backend

register_backend()


@pytest.mark.parametrize("enabled", [True, False])
def test_collector_state_is_restored(enabled):
    (gc.enable if enabled else gc.disable)()
    try:
        with backend.collector_paused():
            assert not gc.isenabled()
            with backend.collector_paused():  # nested: the backward compiles inside a call
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert gc.isenabled() == enabled
        with pytest.raises(RuntimeError):
            with backend.collector_paused():
                raise RuntimeError("a failed compile")
        assert gc.isenabled() == enabled
    finally:
        gc.enable()


def test_compiles_run_with_the_collector_paused(target, monkeypatch):
    seen = []
    real = backend.compile_forward

    def spy(gm, **kwargs):
        seen.append(gc.isenabled())
        return real(gm, **kwargs)

    monkeypatch.setattr(backend, "compile_forward", spy)
    x = torch.randn(target.rows, target.cols, device=target.device, requires_grad=True)
    torch._dynamo.reset()
    out = torch.compile(lambda x: torch.tanh(x * 2.0).sum(), backend="gint")(x)
    out.backward()
    assert seen and not any(seen)  # forward and backward graphs
    assert gc.isenabled()
    torch.testing.assert_close(x.grad, 2.0 * (1 - torch.tanh(x.detach() * 2.0) ** 2))
