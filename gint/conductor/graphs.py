"""CUDA graphs for compiled graphs: ``options={"cuda_graphs": True}``.

gint's compiled graphs replay through torch's CUDA graph trees (the machinery behind
``mode="reduce-overhead"`` and the ``"cudagraphs"`` backend): one memory pool per
device, a warm-up run before each recording, re-recording per new set of symbolic
sizes, and input copies into static buffers where needed. A gint launch is
capture-safe once warm: its bytecode and tensor table are already on the device
(uploaded in the warm-up run), and the launch only passes device addresses, which
replay keeps valid.

Graphs the trees cannot replay (CPU tensors, several devices, input mutation,
incompatible operators) run without CUDA graphs; the reason is logged, as torch's
own backend does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.fx

log = logging.getLogger("gint")


def _recorded(compile_graph: Callable, gm: torch.fx.GraphModule, inputs: list, fixed: int, **kind):
    """gint's compiled ``gm``, recorded and replayed by torch's CUDA graph trees."""
    from torch._dynamo.backends.cudagraphs import find_input_mutations, get_device_index, get_stack_traces
    from torch._inductor.cudagraph_trees import cudagraphify_impl
    from torch._inductor.cudagraph_utils import get_placeholder_info

    # read the graph before gint rewrites it
    traces, placeholders = get_stack_traces(gm), get_placeholder_info(gm.graph)
    mutated, device_index = find_input_mutations(gm.graph), get_device_index(gm)
    compiled = compile_graph(gm, inputs)
    wrapped = cudagraphify_impl(
        compiled,
        _ints_marked(inputs),
        range(fixed),
        device_index=device_index,
        stack_traces=traces,
        placeholders=placeholders,
        mutated_input_idxs=mutated,
        **kind,
    )
    wrapped._boxed_call = True
    return wrapped


def _ints_marked(inputs: list) -> list:
    """The example inputs with symbolic sizes as plain ints: the trees record one graph
    per value of the int inputs they find, and a SymInt is not an ``int``."""
    return [0 if isinstance(v, torch.SymInt) else v for v in inputs]


class GraphCapture:
    """Wraps the forward, inference and backward compilers of one dynamo graph.

    The forward decides whether this graph uses CUDA graphs; its backward follows
    that decision (torch's trees need a backward recorded only when the forward
    was).
    """

    def __init__(self, n_dynamo_inputs: int):
        self.n_dynamo_inputs = n_dynamo_inputs
        self.enabled = True
        self.device_index: int | None = None

    @staticmethod
    def skip_reason(gm: torch.fx.GraphModule, n_fixed: int) -> str | None:
        """Why torch's CUDA graph trees cannot replay ``gm`` (None: they can)."""
        from torch._dynamo.backends.cudagraphs import check_for_skip

        return check_for_skip(gm, n_fixed)

    def forward(self, compile_graph: Callable, gm: torch.fx.GraphModule, inputs: list, is_inference: bool):
        from torch._dynamo.backends.cudagraphs import get_device_index
        from torch._inductor.utils import num_fw_fixed_arguments

        fixed = num_fw_fixed_arguments(self.n_dynamo_inputs, len(inputs))
        reason = self.skip_reason(gm, fixed)
        if reason is not None:
            self.enabled = False
            log.info("gint: no CUDA graph for this graph: %s", reason)
            return compile_graph(gm, inputs)
        self.device_index = get_device_index(gm)
        return _recorded(compile_graph, gm, inputs, fixed, is_backward=False, is_inference=is_inference)

    def backward(self, compile_graph: Callable, gm: torch.fx.GraphModule, inputs: list):
        from torch._inductor import cudagraph_trees
        from torch._inductor.utils import count_tangents

        if not self.enabled:
            return compile_graph(gm, inputs)
        fixed = count_tangents(gm)
        reason = self.skip_reason(gm, fixed)
        if reason is None:
            return _recorded(compile_graph, gm, inputs, fixed, is_backward=True, is_inference=False)
        compiled = compile_graph(gm, inputs)
        log.info("gint: no CUDA graph for this backward graph: %s", reason)
        manager = cudagraph_trees.get_manager(self.device_index or 0, create_if_none_exists=False)

        def run_eagerly(args):
            # the trees must know the forward's generation is over before eager work
            if manager is not None:
                manager.set_to_running_backward()
            return compiled(args)

        run_eagerly._boxed_call = True
        return run_eagerly
