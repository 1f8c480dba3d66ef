"""Compiled functions called from several threads while another thread compiles.

Found by ``python -m gint.conductor.stress`` on an H100 (torch 2.11, 2026-12-06): calls
from 4-8 threads failed now and then with ``RuntimeError: Detected that you are using
FX to symbolically trace a dynamo-optimized function`` (25 of 1,550 first-compile calls,
42 of 741 with 8 threads and new shapes; never with every graph compiled beforehand).
Dynamo refuses to run a compiled function while FX traces, and asks
``torch.fx._symbolic_trace`` whether it does: a module-wide flag that ``Tracer.trace``
sets, in whichever thread traces. gint's compile traces with ``make_fx`` (and so does
AOT autograd), so one thread's compile made every other thread's call look like a call
from inside a trace. (torch 2.13 also asks ``torch.compiler.is_compiling()``, a flag as
process-wide, which hides the case of a trace inside dynamo's compile but not of a plain
``torch.fx.symbolic_trace`` in another thread: ``tests/test_threads.py`` reproduces that.)

``install()`` makes the question per thread: ``Tracer.trace`` also counts its depth in
a thread-local, and the functions dynamo asks answer True only when the asking thread
itself is tracing (and torch's own answer is True). It is idempotent and installed when
the backend is registered.
"""

from __future__ import annotations

import functools
import threading

_local = threading.local()
_lock = threading.Lock()
_QUESTIONS = ("is_fx_tracing", "is_fx_symbolic_tracing")


def tracing_in_this_thread() -> bool:
    return getattr(_local, "depth", 0) > 0


def _counting(trace):
    @functools.wraps(trace)
    def counted(self, *args, **kwargs):
        _local.depth = getattr(_local, "depth", 0) + 1
        try:
            return trace(self, *args, **kwargs)
        finally:
            _local.depth -= 1

    counted._gint_per_thread = True
    return counted


def _per_thread(question):
    @functools.wraps(question)
    def asked() -> bool:
        return tracing_in_this_thread() and question()

    asked._gint_per_thread = True
    return asked


def install() -> None:
    """Make FX's "is this thread tracing?" per thread (idempotent)."""
    import torch._dynamo.eval_frame as eval_frame
    import torch.fx._symbolic_trace as symbolic_trace

    with _lock:
        if getattr(symbolic_trace.Tracer.trace, "_gint_per_thread", False):
            return
        symbolic_trace.Tracer.trace = _counting(symbolic_trace.Tracer.trace)
        for module in (symbolic_trace, eval_frame):  # eval_frame may hold its own reference
            for name in _QUESTIONS:
                question = getattr(module, name, None)
                if callable(question) and not getattr(question, "_gint_per_thread", False):
                    setattr(module, name, _per_thread(question))
