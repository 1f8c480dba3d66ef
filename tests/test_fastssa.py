"""gint.kernel.fastssa: numba's SSA pass gives the same IR with its reaching-definition
lookups remembered, and numba's own method is back after ``installed()``."""

import contextlib

import numba.core.ssa as core_ssa
import numba.cuda.core.ssa as cuda_ssa
import pytest
from numba.core import compiler
from test_fastlive import _branches, _dispatch, _loops

from gint.kernel import fastssa


def _chain(cases: int):
    """A loop around a chain of ``if op == i`` cases that each redefine the same
    variables: the interpreter's shape, with a dominator tree ``cases`` deep."""
    lines = ["def chain(code, x):", "    acc = 0.0", "    top = 0.0", "    for op in code:"]
    for i in range(cases):
        lines += [f"        {'if' if i == 0 else 'elif'} op == {i}:", f"            top = acc * {i} + x"]
        if i % 3 == 0:
            lines.append("            acc = top - 1.0")
    lines += ["        acc += top", "    return acc"]
    scope = {}
    exec("\n".join(lines), scope)
    return scope["chain"]


def _after_ssa(function, remember: bool) -> str:
    func_ir = compiler.run_frontend(function)
    with fastssa.installed() if remember else contextlib.nullcontext():
        blocks = core_ssa._run_ssa(func_ir.blocks)
    return "\n".join(f"{label}: " + "; ".join(map(str, block.body)) for label, block in blocks.items())


@pytest.mark.parametrize("function", [_loops, _branches, _dispatch, _chain(60)], ids=lambda f: f.__name__)
def test_same_ir_with_the_memo(function):
    plain = _after_ssa(function, remember=False)
    assert "phi" in plain
    assert _after_ssa(function, remember=True) == plain


def test_installed_only_inside_the_block():
    before = (cuda_ssa._FixSSAVars._find_def_from_bottom, core_ssa._FixSSAVars._find_def_from_bottom)
    with pytest.raises(KeyError):
        with fastssa.installed():
            assert fastssa.is_installed()
            assert cuda_ssa._FixSSAVars._find_def_from_bottom.__wrapped__ is before[0]
            assert core_ssa._FixSSAVars._find_def_from_bottom.__wrapped__ is before[1]
            with fastssa.installed():
                pass
            assert fastssa.is_installed()
            raise KeyError("a failed build")
    assert (cuda_ssa._FixSSAVars._find_def_from_bottom, core_ssa._FixSSAVars._find_def_from_bottom) == before
    assert not fastssa.is_installed()
