"""A seeded slice of the bytecode fuzzer (``python -m gint.fuzz`` runs more): random and
mutated programs are rejected by the verifier naming a rule, refused at launch with a
clear error, or run to the reference machine's results with no access outside their
tensors. The reference itself is checked against eager PyTorch here too."""

import pytest
import torch

from gint.fuzz import programs, reference
from gint.fuzz.__main__ import fuzz
from gint.host.frontend import Assembler
from gint.kernel.target import SIMULATOR

SLICES = 4
CASES_PER_SLICE = 40  # CI: 160 cases in all under the simulator


@pytest.mark.parametrize("index", range(SLICES))
def test_fuzz_slice(index):
    summary = fuzz(CASES_PER_SLICE, seed=1000 + index * CASES_PER_SLICE)
    assert not summary.failures, "\n".join(f"seed {s}: {p}" for s, p in summary.failures)
    assert summary.ran >= CASES_PER_SLICE // 3, summary  # most cases reach the kernel
    assert summary.cases == CASES_PER_SLICE


def test_fuzz_covers_every_outcome():
    """Over a few hundred cases (no kernel launch needed to count them) the generator makes
    row programs and plain ones, exact and inexact ones, and the mutations break rules."""
    cases = [programs.random_case(seed) for seed in range(400)]
    from gint.host.program import Program
    from gint.host.verifier import VerificationError, verify

    rules, rows, exact = set(), 0, 0
    for case in cases:
        program = Program(case.code, tuple(f"t{i}" for i in range(len(case.tensors))))
        try:
            verify(program)
        except VerificationError as error:
            rules.add(error.rule)
            continue
        rows += program.is_row_program
        exact += case.exact
    assert {"opcode", "operand", "underflow", "branch", "halt", "math", "aliasing"} <= rules, rules
    assert rows > 50 and exact > 100


@pytest.mark.gpu
@pytest.mark.skipif(SIMULATOR or not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fuzz_on_the_gpu():
    summary = fuzz(2000, seed=50_000, device="cuda")
    assert not summary.failures, "\n".join(f"seed {s}: {p}" for s, p in summary.failures[:20])


# ------------------------------------------------------- the oracle against eager torch


def test_reference_reduces_in_the_kernels_order():
    """REDUCE folds each lane's elements, then a butterfly: the same sum as a tree of
    that shape, and within rounding of torch's sum."""
    torch.manual_seed(0)
    values = torch.randn(3, reference.ROW_CHUNK)
    got = reference.warp_reduce(values, 0)
    torch.testing.assert_close(got[:, 0], values.sum(-1), rtol=1e-5, atol=1e-5)
    assert torch.equal(got, got[:, :1].expand_as(got))
    lanes = values.reshape(3, 2, 32, 4).permute(0, 2, 1, 3).reshape(3, 32, 8)
    folded = lanes[:, :, 0]
    for k in range(1, 8):
        folded = folded + lanes[:, :, k]
    for mask in (16, 8, 4, 2, 1):
        folded = folded + folded[:, torch.arange(32) ^ mask]
    assert torch.equal(got[:, 0], folded[:, 0])
    assert torch.equal(reference.warp_reduce(values, 1)[:, 0], values.amax(-1))


def test_reference_models_chunks_row_masks_and_stores_outside_loops():
    n = 300  # two chunks, the second partial
    x = torch.randn(2, n)
    # code outside the loop runs on the row's first chunk only; ROWMASK only touches past the end
    program = (
        Assembler("x", "first", "masked")
        .load(0).store(1)
        .load(0).rowmask(5.0).store(2).nextchunk(2)
        .halt().program()
    )  # fmt: skip
    out = reference.execute(program, [x, torch.zeros(2, n), torch.zeros(2, n)])
    want_first = torch.zeros(2, n)
    want_first[:, : reference.ROW_CHUNK] = x[:, : reference.ROW_CHUNK]
    assert torch.equal(out[1], want_first)
    assert torch.equal(out[2], x)  # positions past the end are never stored


def test_reference_saturates_integers_as_the_kernel_does():
    values = torch.tensor([3e9, -3e9, float("nan"), 2.7, -2.7, 1e19, -1e19, 2.0**63, 2.0**31])
    assert reference.to_dtype(values, torch.int32).tolist() == [
        2**31 - 1, -(2**31), 0, 2, -2, 2**31 - 1, -(2**31), 2**31 - 1, 2**31 - 1,
    ]  # fmt: skip
    assert reference.to_dtype(values, torch.int64).tolist() == [
        3_000_000_000, -3_000_000_000, 0, 2, -2, 2**63 - 1, -(2**63), 2**63 - 1, 2**31,
    ]  # fmt: skip
    x = torch.tensor([-0.0, 0.0, 1.0, float("nan")])
    y = torch.tensor([0.0, -0.0, float("nan"), 1.0])
    assert torch.signbit(reference.ieee_maximum(x, y)).tolist() == [False, False, False, False]
    assert torch.signbit(reference.ieee_minimum(x, y)[:2]).tolist() == [True, True]
    assert torch.isnan(reference.ieee_maximum(x, y)[2:]).all()


def test_reference_marks_what_a_math_library_can_move():
    """A math function's result is INEXACT (compared within a tolerance); a floor, a
    comparison or an fmod of it is UNRELIABLE (never compared); exact arithmetic is EXACT."""
    x = torch.randn(2, 50) * 10
    program = (
        Assembler("x", "exact", "inexact", "jumped", "fmod_of_exact")
        .load(0).addi(1.0).store(1)
        .load(0).park().math("sin").unpark().addi(1.0).store(2)
        .load(0).park().math("sin").unpark().floor().store(3)
        .load(0).load(0).addi(0.5).park2().math("fmod").unpark().store(4)
        .halt().program()
    )  # fmt: skip
    out, marks = reference.execute(program, [x] + [torch.zeros(2, 50)] * 4, marks=True)
    assert torch.equal(out[2], torch.sin(x) + 1)
    for slot, mark in [(1, reference.EXACT), (2, reference.INEXACT), (3, reference.UNRELIABLE), (4, reference.EXACT)]:
        assert torch.equal(marks[slot], torch.full((2, 50), mark, dtype=torch.int8)), slot


def test_reference_fmod_is_exact_where_torch_vectorized_fmod_is_not():
    big, small = torch.full((64,), 1e30), torch.full((64,), 1.6777216e-23)
    program = Assembler("a", "b", "out").load(0).load(1).park2().math("fmod").unpark().store(2).halt().program()
    out = reference.execute(program, [big[None], small[None], torch.zeros(1, 64)])[2]
    assert torch.equal(out[0], torch.fmod(big.double(), small.double()).float())  # exact, and not nan
