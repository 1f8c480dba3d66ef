"""Numba's SSA reconstruction with its reaching-definition lookups remembered, for the
kernel build.

What it changes: ``_FixSSAVars._find_def_from_bottom`` in ``numba.cuda.core.ssa`` (and
``numba.core.ssa``), the lookup of the definition of the variable being renamed that
reaches the end of a block. For a block with no definition of it, numba climbs the
dominator tree one block per call until it finds one (or a phi location, where it
inserts a phi). The interpreter's dispatch chain is ~1,346 blocks deep, and numba looks
up every use of every renamed variable this way: 4.6 M recursive calls per build.

Why the answer can be remembered: while one variable is renamed (one ``states`` dict),
the definitions of a block only ever change by a phi inserted at a phi location, and
numba inserts it the first time a lookup reaches that block (on the way up, a lookup
stops at the first block with a definition or at a phi location). So the first lookup
from a block finds what every later lookup from it would find, and a later lookup has
no side effect in numba's code either: the phis are created, named and placed exactly as
without the memo, and the IR is the same. (One difference: with
``NUMBA_ALWAYS_WARN_UNINIT_VAR`` set, an uninitialized variable is warned about once
per block rather than once per use.)

Measured on the 2-CPU machine, with ``gint.kernel.fastlive`` installed: the SSA pass
over the kernel and its device functions 22.5 s -> 11.8 s, the same LLVM IR.

``installed()`` puts the memo in place only for a ``with`` block, and numba's method
back after it, also when the block raises.
"""

from __future__ import annotations

import contextlib
import importlib

_SSA_MODULES = ("numba.cuda.core.ssa", "numba.core.ssa")
_MEMO = "gint_reaching_definitions"  # a key in numba's per-variable ``states`` dict
_depth = 0  # nesting of installed(): only the outermost one patches and restores
_originals: dict = {}  # _FixSSAVars class -> numba's _find_def_from_bottom


def _remembering(original):
    def _find_def_from_bottom(self, states, label, loc):
        memo = states.get(_MEMO)
        if memo is None:
            memo = states[_MEMO] = {}
        found = memo.get(label)
        if found is None:
            found = memo[label] = original(self, states, label, loc)
        return found

    _find_def_from_bottom.__wrapped__ = original
    return _find_def_from_bottom


@contextlib.contextmanager
def installed():
    """Within the block numba's SSA pass remembers reaching definitions (see the module
    docstring); a numba without ``_FixSSAVars._find_def_from_bottom`` is left alone."""
    global _depth
    _depth += 1
    try:
        if _depth == 1:
            for name in _SSA_MODULES:
                with contextlib.suppress(ImportError):
                    fixer = getattr(importlib.import_module(name), "_FixSSAVars", None)
                    original = getattr(fixer, "_find_def_from_bottom", None)
                    if original is not None:
                        _originals[fixer] = original
                        fixer._find_def_from_bottom = _remembering(original)
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            while _originals:
                fixer, original = _originals.popitem()
                fixer._find_def_from_bottom = original


def is_installed() -> bool:
    return bool(_originals)
