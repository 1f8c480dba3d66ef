"""The ``torch.compile`` backend ``"gint"``.

Dynamo's graph is lowered to core ATen (``torch._decomp``): by AOT autograd, forward
and backward alike, or, for an inference graph that needs nothing of AOT autograd, by
``make_fx`` alone (``gint.conductor.inference``: no per-call runtime wrapper);
operators eager runs fused (softmax, layer_norm ...) are traced whole and expanded for
gint afterwards (``gint.conductor.composites``), so what gint does not take runs as
eager's fused kernel. Each ATen graph is partitioned (``GraphPartitioner``), every partition is compiled to
bytecode (``GintCompiler``) and replaced in the graph by a call to its
``GintCompiledSubgraph``; all other nodes stay in the graph and run eagerly, in
graph order.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import operator

import torch
import torch.fx
from torch._decomp import core_aten_decompositions, get_decompositions
from torch._dynamo.exc import RestartAnalysis
from torch._dynamo.backends.common import aot_autograd
from torch.fx.passes.tools_common import stable_topological_sort

from gint import stats
from gint.conductor import composites, threads
from gint.conductor.balance import GraphBalance
from gint.conductor.compiler import GintCompiler
from gint.conductor.copies import drop_clones, mutates_nothing, single_part_cats
from gint.conductor.graphs import GraphCapture
from gint.conductor.inference import trace_for_inference
from gint.conductor.masks import simplify_masks
from gint.conductor.options import Options
from gint.conductor.partitioner import GraphPartitioner, boundary
from gint.conductor.reductions import var_mean
from gint.conductor.report import (
    FallbackReport,
    MapNode,
    Report,
    SubgraphReport,
    active_report,
    recording,
    warn_once,
)
from gint.conductor.symbolic import materialize_symbolic_scalars
from gint.conductor.viewcalls import as_methods
from gint.kernel.target import SIMULATOR

log = logging.getLogger("gint")
aten = torch.ops.aten


def target_device() -> torch.device | None:
    """Where gint runs: CPU tensors under the simulator, else CUDA (None: nowhere)."""
    if SIMULATOR:
        return torch.device("cpu")
    return torch.device("cuda") if torch.cuda.is_available() else None


NO_DEVICE = (
    "gint found no CUDA device, so backend='gint' runs every operator eagerly; on a machine "
    "without a GPU, set NUMBA_ENABLE_CUDASIM=1 before importing torch to run gint's kernel "
    "in Numba's CUDA simulator (slow: for tests)"
)


def is_compute(node: torch.fx.Node) -> bool:
    """Nodes that compute values (not placeholders, outputs, getitem or views)."""
    if node.op != "call_function" or node.target is operator.getitem:
        return False
    return not getattr(node.target, "is_view", False)


def _label(node: torch.fx.Node) -> str:
    if node.op in ("placeholder", "output"):
        return "input" if node.op == "placeholder" else "output"
    target = node.target
    return getattr(target, "__name__", str(target)).split(".")[0] if node.op == "call_function" else str(target)


def partition_map(gm: torch.fx.GraphModule, compiled_partitions, reasons: dict, first: int) -> tuple:
    """``gm``'s nodes as partitioned, for ``gint.viz.draw_partitions``: subgraph indices count
    from ``first`` (the report's subgraphs so far)."""
    group = {node: first + k for k, (nodes, _) in enumerate(compiled_partitions) for node in nodes}
    return tuple(
        MapNode(node.name, _label(node), tuple(a.name for a in node.all_input_nodes), group.get(node), reasons.get(node))
        for node in gm.graph.nodes
    )


def _replace(gm: torch.fx.GraphModule, nodes: list[torch.fx.Node], compiled, name: str) -> None:
    """Replace ``nodes`` by one call of ``compiled`` and a getitem per output."""
    edge = boundary(nodes)
    compiled.__name__ = name
    with gm.graph.inserting_after(nodes[-1]):
        call = gm.graph.call_function(compiled, tuple(edge.inputs))
    previous = call
    for k, out in enumerate(edge.outputs):
        with gm.graph.inserting_after(previous):
            item = gm.graph.call_function(operator.getitem, (call, k))
        item.meta = dict(out.meta)
        out.replace_all_uses_with(item)
        previous = item
    for node in reversed(nodes):
        gm.graph.erase_node(node)


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off while gint compiles, back as it was after.
    Compiling allocates many small objects among a model's many live ones, so the
    collector ran often and scanned them all: transformers' 4-layer GPT-2, one training
    step on the CPU machine, gint's compile_forward 0.62 -> 0.28 s, the backend's whole
    forward compile (AOT autograd's tracing included) 1.37 -> 1.02-1.13 s. What a compile
    leaves in cycles is collected once it is back on."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_graph(gm: torch.fx.GraphModule, example_inputs, *, options: Options):
    """Compile one ATen graph (forward, backward or inference) for gint; the result
    takes AOT autograd's boxed calling convention. A graph gint fails on runs eagerly."""
    try:
        with collector_paused():
            forward = compile_forward(gm, options=options)
    except RestartAnalysis:  # dynamo's own signal to trace again, not a failure
        raise
    except Exception as error:  # noqa: BLE001 - every ATen graph has an eager path
        forward = run_eagerly(gm, error, "graph from AOT autograd")
    # Dynamo must never trace gint's runtime (launch code, the simulator) when a compiled
    # graph runs inside a frame it is watching (e.g. a backward after a graph break).
    return boxed(torch._dynamo.disable(forward))


def compile_forward(gm: torch.fx.GraphModule, *, options: Options):
    """Rewrite ``gm`` with gint subgraphs; return its generated forward (called directly:
    no nn.Module.__call__ per call). Every partition is compiled before ``gm`` changes, so
    a failure leaves ``gm`` as it was (its nodes run eagerly)."""
    device = target_device()
    if device is None:
        warn_once(NO_DEVICE)
    stats.bump("cats_to_clones", single_part_cats(gm))
    if mutates_nothing(gm):
        stats.bump("clones_dropped", drop_clones(gm))
    gm.graph.eliminate_dead_code()  # a partition whose results nothing reads has nothing to store
    whole = composites.expand(gm, expansion_table())
    rewrites = materialize_symbolic_scalars(gm)
    try:
        partitioner = GraphPartitioner(gm, max_tensors=options.max_tensors, device=device)
        plan = partitioner.plan()
        plan = partitioner.without(plan, composites.split(whole, plan.partitions))
        partitions = []
        for nodes in plan.partitions:
            if len(nodes) < options.min_ops:
                for node in nodes:
                    plan.fallback[node] = f"in a group of {len(nodes)} op(s), below min_ops={options.min_ops}"
            else:
                partitions.append(nodes)
        in_gint = {node for nodes in partitions for node in nodes}
        rewrites.undo(keep=in_gint)  # eager nodes take numbers
        compiler = GintCompiler()
        compiled_partitions = [
            (nodes, compiler.compile(nodes, options.eager_when_faster, whole)) for nodes in partitions
        ]
    except BaseException:
        rewrites.undo()  # ``gm`` as it was: its nodes run eagerly
        composites.restore(gm, whole, set())
        raise
    reasons = dict(plan.fallback)
    for member, restored in composites.restore(gm, whole, in_gint).items():  # eager's own fused kernels
        reason = reasons.pop(member, None)
        if reason is not None:
            reasons.setdefault(restored, reason)
    compute = [n for n in gm.graph.nodes if is_compute(n)]
    report = active_report()
    if report is not None:
        report.partition_maps.append(partition_map(gm, compiled_partitions, reasons, len(report.subgraphs)))
    for index, (nodes, compiled) in enumerate(compiled_partitions):
        if report is not None:
            report.subgraphs.append(SubgraphReport(compiled.ops, compiled.num_tensors, compiled.disassembly, compiled))
        _replace(gm, nodes, compiled, f"gint_subgraph_{index}")
    gint_nodes = sum(len(nodes) for nodes, _ in compiled_partitions)
    fallback = [(n, reasons[n]) for n in gm.graph.nodes if n in reasons and is_compute(n)]
    stats.bump("graphs_compiled")
    stats.bump("fallback_nodes", len(fallback))
    if report is not None:
        report.graphs += 1
        report.compute_nodes += len(compute)
        report.gint_nodes += gint_nodes
        report.fallback += [FallbackReport(n.name, str(n.target), reason) for n, reason in fallback]
    as_methods(gm)  # after the report counted the views
    stable_topological_sort(gm)
    gm.graph.lint()
    gm.recompile()
    if hasattr(gm, "real_recompile"):  # a lazy GraphModule: generate its code now, not on the first call
        gm.real_recompile()
    log.debug("gint: compiled a graph: %d of %d compute nodes in gint", gint_nodes, len(compute))
    forward = type(gm).forward.__get__(gm)
    if options.graph_balance and options.eager_when_faster and not options.cuda_graphs:
        return GraphBalance(forward, [compiled for _, compiled in compiled_partitions])
    return forward


def run_eagerly(gm: torch.fx.GraphModule, error: Exception, what: str):
    """``gm``'s own forward, after gint failed on it: the reason goes to ``gint.explain``'s
    report and to one warning per distinct reason; the user's program runs on."""
    reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    log.debug("gint: %s runs eagerly", what, exc_info=error)
    warn_once(f"gint could not compile a {what}; it runs eagerly ({reason})")
    stats.bump("graphs_failed")
    report = active_report()
    if report is not None:
        compute = [n for n in gm.graph.nodes if is_compute(n)]
        report.graphs += 1
        report.compute_nodes += len(compute)
        report.fallback += [FallbackReport(n.name, str(n.target), f"gint failed on this graph: {reason}") for n in compute]
    return type(gm).forward.__get__(gm)


def boxed(forward):
    """AOT autograd's boxed calling convention: one list of inputs, which the callee
    empties (so inputs can be freed early; CUDA graph trees require it)."""

    def run(args: list):
        inputs = list(args)
        args.clear()
        return forward(*inputs)

    run._boxed_call = True
    return run


@functools.lru_cache(maxsize=1)
def decompositions():
    """What torch's own compiler decomposes: core ATen minus what Inductor keeps whole
    (``torch._inductor.decomposition.decomps_to_exclude``; among them the CPU flash
    attention, whose decomposition is for export and gives wrong gradients), plus the
    decompositions of ``composites.COMPOSITES``: gint runs what they decompose into
    (pointwise operators and row reductions), also where Inductor lowers them itself."""
    from torch._decomp import remove_decompositions
    from torch._inductor.decomposition import decomps_to_exclude

    table = dict(core_aten_decompositions())
    remove_decompositions(table, decomps_to_exclude)
    table.update(get_decompositions(list(composites.COMPOSITES)))
    table[aten.var_mean.correction] = var_mean  # torch's goes through prims
    return table


@functools.lru_cache(maxsize=1)
def expansion_table():
    """What composites expand with: ``decompositions()``, and batch norm's functional
    form (eval-mode batch norm decomposes into it; traced graphs never hold it: they
    hold its functionalized or eval forms)."""
    table = dict(decompositions())
    table.update(get_decompositions([aten._native_batch_norm_legit.default]))
    return table


@functools.lru_cache(maxsize=1)
def tracing_table():
    """What the backend traces with: ``decompositions()`` less the operators that stay
    whole until gint takes them (``gint.conductor.composites``)."""
    return composites.tracing_decompositions(decompositions())


def gint_backend(gm: torch.fx.GraphModule, example_inputs, options: dict | None = None, mode: str | None = None):
    """The ``torch.compile`` backend: ``torch.compile(fn, backend="gint", options={...})``.

    Options are validated (``gint.conductor.options.Options``); an unknown one is an error.
    """
    if mode not in (None, "default"):
        raise ValueError(f"the gint backend has no mode {mode!r}; use options={{...}} instead")
    threads.install()  # before gint traces anything: other threads' calls must not see it
    parsed = Options.parse(options)
    try:
        with collector_paused():
            return _compile(gm, example_inputs, parsed)
    except RestartAnalysis:  # e.g. AOT's float tensorify pass asking dynamo to trace again
        raise
    except Exception as error:  # noqa: BLE001 - dynamo's graph always runs eagerly
        return run_eagerly(gm, error, "graph")


def _compile(gm: torch.fx.GraphModule, example_inputs, parsed: Options):
    simplify_masks(gm)  # so that SDPA picks a fused kernel, as eager does
    if parsed.direct_inference and not parsed.cuda_graphs:
        traced = trace_for_inference(gm, example_inputs, tracing_table())
        if traced is not None:
            return compile_forward(traced, options=parsed)  # dynamo already disables tracing into it
    # torch's AOT autograd backend wrapper, not aot_module_simplified alone: dynamo's DDP
    # optimizer counts its calls to pair each bucket's forward with its backward
    compiler = functools.partial(compile_graph, options=parsed)
    if not parsed.cuda_graphs:
        return aot_autograd(fw_compiler=compiler, bw_compiler=compiler, decompositions=tracing_table())(
            gm, example_inputs
        )
    capture = GraphCapture(len(example_inputs))
    return aot_autograd(
        fw_compiler=functools.partial(capture.forward, compiler, is_inference=False),
        inference_compiler=functools.partial(capture.forward, compiler, is_inference=True),
        bw_compiler=functools.partial(capture.backward, compiler),
        decompositions=tracing_table(),
    )(gm, example_inputs)


def register_backend(name: str = "gint") -> None:
    """Make ``backend=name`` available to ``torch.compile`` (idempotent).

    Installing the package already registers ``"gint"`` through the
    ``torch_dynamo_backends`` entry point; this is for source checkouts and aliases.
    """
    from torch._dynamo.backends.registry import _COMPILER_FNS
    from torch._dynamo.backends.registry import register_backend as register

    threads.install()

    if _COMPILER_FNS.get(name) is gint_backend:
        return
    if name in _COMPILER_FNS:
        raise ValueError(f"a different torch.compile backend is already registered as {name!r}")
    register(gint_backend, name=name)


def explain(fn, *args, **kwargs) -> Report:
    """Run ``fn(*args, **kwargs)`` through the gint backend and report what ran where.

    The report has ``.subgraphs`` (``.ops``, ``.num_tensors``, ``.disassembly``),
    ``.fallback`` (node, op and reason for each node that ran eagerly), ``.coverage`` and
    ``.partition_maps`` (each graph's nodes with their subgraph: ``gint.viz.draw_partitions``
    draws them); ``print(report)`` shows a table. ``fn`` is compiled afresh.
    """

    def backend(gm, example_inputs):  # a new backend object: dynamo compiles anew
        return gint_backend(gm, example_inputs)

    with recording(Report()) as report:
        torch.compile(fn, backend=backend)(*args, **kwargs)
    return report
