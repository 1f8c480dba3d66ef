"""gint: a GPU bytecode interpreter for PyTorch.

One pre-built GPU kernel runs every compiled graph: ``torch.compile(fn, backend="gint")``
turns FX graphs into compact bytecode instead of compiling a kernel per graph and shape.
"""

__version__ = "0.1.0"


def counters() -> dict[str, int]:
    """A snapshot of gint's counters: graphs compiled, programs built, kernel builds,
    launches, fallback nodes."""
    from gint import stats

    return stats.snapshot()


def explain(fn, *args, **kwargs):
    """Run ``fn`` through the gint backend and report subgraphs, fallbacks and coverage
    (see ``gint.conductor.explain``)."""
    from gint.conductor import explain as _explain

    return _explain(fn, *args, **kwargs)
