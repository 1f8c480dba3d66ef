"""Small helpers for writing the interpreter's source text (``gint.kernel.codegen``)."""

from __future__ import annotations

import ast

from gint.isa import MAX_DEPTH

MATH_X = MAX_DEPTH - 1  # the math register: the deepest stack position (free while parked)

INDENT = "    "


def stack_var(position: int, element: int) -> str:
    return f"s{position}_{element}"


class _Rename(ast.NodeTransformer):
    def __init__(self, names: dict[str, str]):
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names:
            return ast.copy_location(ast.Name(self.names[node.id], node.ctx), node)
        return node


def substitute(expr: str, names: dict[str, str]) -> str:
    tree = _Rename(names).visit(ast.parse(expr, mode="eval"))
    return ast.unparse(tree)


def indent(lines: list[str], levels: int = 1) -> list[str]:
    return [INDENT * levels + line for line in lines]
