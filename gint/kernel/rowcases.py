"""The kernel cases of row programs (ROWMASK, ROWLEN, REDUCE, NEXTCHUNK), mixed into
``gint.kernel.codegen``'s generator, which supplies ``self.ept`` and ``self.vec``.

In a row program each warp walks whole rows chunk by chunk; see ``gint.kernel.codegen``
for the skeleton (the chunk loop around the dispatch loop) and ``gint.host.rowcode``
for the programs.
"""

from __future__ import annotations

from gint import abi, isa
from gint.kernel.source import INDENT, MATH_X, indent, stack_var, substitute


class RowCases:
    def rowmask(self, depth: int) -> list[str]:
        """Elements past the row's end (only in its last, partial chunk) become the immediate."""
        lines = []
        for k in range(self.ept):
            g, v = divmod(k, self.vec)
            var = stack_var(depth - 1, k)
            lines.append(f"{var} = {isa.IMMEDIATE} if chunk_start + e{g} + {v} >= row else {var}")
        return [f"{isa.IMMEDIATE} = bits_to_f32(arg)", "if not full:", *indent(lines)]

    def rowlen(self, depth: int) -> list[str]:
        return ["t0 = float32(row)"] + [f"{stack_var(depth, k)} = fresh(t0)" for k in range(self.ept)]

    def reduce(self, depth: int) -> list[str]:
        """One case for every depth, on the math register: fold the thread's elements,
        then the warp's lanes by butterfly (every lane ends with the same value)."""
        x = MATH_X
        lines = []
        for n, reduction in enumerate(isa.REDUCTIONS):
            combine = isa.BY_NAME[reduction.combine].expr
            body = [f"t1 = {stack_var(x, 0)}"]
            body += [f"t1 = {substitute(combine, {'a': 't1', 'b': stack_var(x, k)})}" for k in range(1, self.ept)]
            for lane_mask in (16, 8, 4, 2, 1):
                body += [
                    f"t0 = shuffle_xor(t1, {lane_mask}, sh_exchange, tid)",
                    f"t1 = {substitute(combine, {'a': 't1', 'b': 't0'})}",
                ]
            lines += [f"{'if' if n == 0 else 'elif'} arg == {reduction.code}:  # {reduction.name}", *indent(body)]
        return lines + [f"{stack_var(x, k)} = fresh(t1)" for k in range(self.ept)]

    def nextchunk(self, depth: int) -> list[str]:
        """The only branch, uniform across the warp. It leaves the dispatch loop, so the
        chunk position stays invariant inside it: the chunk loop around it resumes at
        the target (next chunk) or after this instruction (``pc`` is one fetch ahead)."""
        return [
            "chunk = int32(chunk + 1)",
            "if int64(chunk) * tile_len < row:",
            INDENT + f"pc = {abi.CODE_HEADER} + 2 * arg",
            "else:",
            INDENT + "chunk = int32(0)",
            INDENT + "pc = pc - 2",
            "break",
        ]
