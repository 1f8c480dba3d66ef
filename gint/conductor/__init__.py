"""The torch.compile backend "gint": partitioner, compiler, compiled subgraphs, fallback."""

from gint.conductor.backend import compile_graph, explain, gint_backend, register_backend
from gint.conductor.compiler import GintCompiler
from gint.conductor.options import Options
from gint.conductor.partitioner import GraphPartitioner
from gint.conductor.subgraph import GintCompiledSubgraph

__all__ = [
    "GintCompiledSubgraph",
    "GintCompiler",
    "GraphPartitioner",
    "Options",
    "compile_graph",
    "explain",
    "gint_backend",
    "register_backend",
]
