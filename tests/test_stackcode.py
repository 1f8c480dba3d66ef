"""Properties of the stack scheduler on random expression DAGs.

Each DAG reads 1-3 input slots at row offsets 0..2, has constants and every
value-producing operator of the ISA (``expr.VALUE_OPS``), shares subexpressions,
and stores to 1-3 outputs; some also update input 0 in place between the other
stores. For every DAG the scheduled program must verify, stay within
``isa.MAX_DEPTH`` (or the scheduler says ``StackDepthError``), compute every node
and load exactly once, store in order, and give the same results in the reference
machine as evaluating the DAG directly with torch. A few also run on the kernel.
"""

import random

import pytest
import torch

from gint import isa
from gint.host import executor, expr, stackcode
from gint.host.program import Program
from gint.host.verifier import verify
from gint.fuzz.reference import COMPUTE, execute, ieee_maximum, ieee_minimum

OPERATORS = sorted(expr.VALUE_OPS - {"LOAD", "CONST", "ROWLEN"})
CONSTANTS = [0.0, 1.0, -2.5, 0.5, 3.0, -0.0, 1e-3]
SHAPE = (3, 17)  # 2-D: row offsets must read 0 past the end of each row


def random_dag(seed: int):
    """(number of inputs, number of outputs, stores) for one random program."""
    rng = random.Random(seed)
    n_in = rng.randint(1, 3)
    in_place = rng.random() < 0.3  # input 0 is also stored, so it is loaded at offset 0 only
    pool = []
    for _ in range(rng.randint(1, 8 if in_place else 5)):
        slot = rng.randrange(n_in)
        offset = 0 if in_place and slot == 0 else rng.randint(0, 2)
        pool.append(expr.load(slot, offset))
    pool.append(expr.const(rng.choice(CONSTANTS)))
    for _ in range(rng.randint(1, 12)):
        name = rng.choice(OPERATORS)
        # mostly recent nodes (deep chains), sometimes any node (sharing across the DAG)
        pops = isa.BY_NAME[name].pops
        args = [rng.choice(pool[-4:]) if rng.random() < 0.6 else rng.choice(pool) for _ in range(pops)]
        if rng.random() < 0.15:
            args[-1] = expr.const(rng.choice(CONSTANTS))
        pool.append(expr.apply(name, *args))
    n_out = rng.randint(1, 3)
    stores = [
        expr.Store(n_in + k, rng.choice(pool[-3:]) if rng.random() < 0.7 else rng.choice(pool)) for k in range(n_out)
    ]
    if in_place:
        at = rng.randrange(len(stores))  # before some other store, which then reads input 0 too
        stores.insert(at, expr.Store(0, rng.choice(pool)))
        later = stores[at + 1]
        reads_x = expr.apply(rng.choice(["ADD", "MUL", "SUB"]), later.value, expr.load(0))
        stores[at + 1] = expr.Store(later.slot, reads_x)
    return n_in, n_out, stores


# ------------------------------------------------------------------ direct evaluation


def _shift(values: torch.Tensor, offset: int) -> torch.Tensor:
    """values[..., i + offset], 0 past the end of the row."""
    if offset == 0:
        return values
    out = torch.zeros_like(values)
    out[..., : values.shape[-1] - offset] = values[..., offset:]
    return out


def _compare(test):
    return lambda a, b: test(a, b).to(torch.float32)


DIRECT = {
    "ADD": lambda a, b: a + b,
    "SUB": lambda a, b: a - b,
    "MUL": lambda a, b: a * b,
    "DIV": lambda a, b: a / b,
    "FMA": lambda a, b, c: (a.double() * b.double() + c.double()).float(),
    "NEG": lambda a: -a,
    "MIN": ieee_minimum,  # the ISA's MIN/MAX order -0 below +0 (torch's CPU maximum does not, always)
    "MAX": ieee_maximum,
    "EQ": _compare(torch.eq),
    "NE": _compare(torch.ne),
    "LT": _compare(torch.lt),
    "LE": _compare(torch.le),
    "GT": _compare(torch.gt),
    "GE": _compare(torch.ge),
    "SELECT": lambda c, a, b: torch.where(c != 0, a, b),
}


def evaluate(stores, inputs):
    """Final tensors after performing ``stores`` in order; every load reads the inputs
    as they were before the program ran."""
    memo = {}

    def value(node):
        if node not in memo:
            if node.op == "LOAD":
                slot, offset = isa.decode_slot(node.operand)
                memo[node] = _shift(inputs[slot].float().expand(SHAPE), offset)
            elif node.op == "CONST":
                memo[node] = torch.full(SHAPE, isa.bits_f32(node.operand))
            else:
                # instructions added to the table after this file fall back to the reference's torch function
                function = DIRECT.get(node.op, COMPUTE[node.op])
                memo[node] = function(*(value(arg) for arg in node.args))
        return memo[node]

    outs = [t.clone() for t in inputs]
    for store in stores:
        outs[store.slot] = value(store.value).clone()
    return outs


def random_inputs(seed: int, count: int, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(SHAPE, generator=g) for _ in range(count)]
    tensors[0].view(-1)[::5] = 0.0  # division by zero, SELECT on 0
    if count > 1:
        tensors[1].view(-1)[::4] = tensors[0].view(-1)[::4]  # ties for comparisons and MIN/MAX
    return [t.to(device) for t in tensors]


def schedule(seed: int):
    n_in, n_out, stores = random_dag(seed)
    try:
        code = stackcode.schedule(stores)
    except stackcode.StackDepthError:
        return None
    return n_in, n_out, stores, Program(tuple(code), tuple(f"t{i}" for i in range(n_in + n_out)))


# -------------------------------------------------------------------------- tests

SEEDS = range(1000)


def test_generator_covers_the_operators_and_mostly_fits():
    used, scheduled, in_place, shared = set(), 0, 0, 0
    for seed in SEEDS:
        n_in, _, stores = random_dag(seed)
        nodes = expr.postorder([s.value for s in stores])
        used |= {n.op for n in nodes}
        in_place += any(s.slot < n_in for s in stores)
        shared += any(sum(a == n for m in nodes for a in m.args) > 1 for n in nodes)
        scheduled += schedule(seed) is not None
    assert used == expr.VALUE_OPS - {"ROWLEN"}  # a row program's value: tests/test_rows.py
    assert scheduled >= 0.9 * len(SEEDS), "most random DAGs should fit the stack"
    assert in_place >= 0.15 * len(SEEDS) and shared >= 0.5 * len(SEEDS)


@pytest.mark.parametrize("chunk", range(8))
def test_random_dags_schedule_correctly(chunk):
    for seed in SEEDS[chunk :: 8]:
        scheduled = schedule(seed)
        if scheduled is None:
            continue
        n_in, n_out, stores, program = scheduled
        # verifies, so never deeper than MAX_DEPTH
        depths = verify(program)
        after = [d - isa.BY_OPCODE[op].pops + isa.BY_OPCODE[op].pushes for (op, _), d in zip(program.code, depths)]
        assert max(after) <= isa.MAX_DEPTH
        # the stores happen in order, each once
        store_op = isa.BY_NAME["STORE"].opcode
        assert [arg for op, arg in program.code if op == store_op] == [
            isa.encode_slot(s.slot, s.offset) for s in stores
        ], f"seed {seed}"
        # every operator node is computed once (by its immediate form where an operand is a
        # constant); every distinct load is issued, more than once only where the stack was
        # too tight to hold it (the scheduler re-issues it)
        nodes = expr.postorder([s.value for s in stores])
        opcodes = [op for op, _ in program.code]
        emitted = [stackcode.immediate_form(n)[0] if stackcode.immediate_form(n) else n.op for n in nodes if n.op in OPERATORS]
        for name in set(emitted) | set(OPERATORS):
            assert opcodes.count(isa.BY_NAME[name].opcode) == emitted.count(name), f"seed {seed} {name}"
        assert opcodes.count(isa.BY_NAME["LOAD"].opcode) >= sum(n.op == "LOAD" for n in nodes), f"seed {seed}"
        # same results as the DAG itself
        inputs = random_inputs(seed, n_in + n_out)
        want = evaluate(stores, inputs)
        got = execute(program, inputs)
        for slot, (g, w) in enumerate(zip(got, want)):
            message = f"seed {seed} slot {slot}"
            torch.testing.assert_close(g, w, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{message}: {m}")


def _kernel_seeds(count: int):
    """The first ``count`` schedulable seeds of some length, in-place ones among them."""
    seeds = []
    for seed in SEEDS:
        scheduled = schedule(seed)
        if scheduled is not None and len(scheduled[3]) >= 12:
            seeds.append(seed)
        if len(seeds) == count:
            break
    return seeds


KERNEL_SEEDS = _kernel_seeds(16)


@pytest.mark.parametrize("seed", KERNEL_SEEDS)
def test_random_dags_on_the_kernel(target, seed):
    n_in, n_out, stores, program = schedule(seed)
    cpu = random_inputs(seed, n_in + n_out)
    want = execute(program, cpu)
    if target.name != "sim":  # same values, tiled up to the GPU's size
        reps = (target.rows // SHAPE[0] + 1, target.cols // SHAPE[1] + 1)
        cpu = [t.repeat(reps) for t in cpu]
        want = execute(program, cpu)
    tensors = [t.to(target.device) for t in cpu]
    executor.run(program, tensors)
    for slot, (got, w) in enumerate(zip(tensors, want)):
        torch.testing.assert_close(got.cpu(), w, equal_nan=True, msg=lambda m: f"seed {seed} slot {slot}: {m}")


def test_kernel_seeds_include_in_place_updates():
    in_place = [seed for seed in KERNEL_SEEDS if any(s.slot < random_dag(seed)[0] for s in random_dag(seed)[2])]
    assert len(in_place) >= 4


@pytest.mark.parametrize("n_loads", [4, 12])
def test_old_value_of_a_stored_slot_survives_the_store(target, n_loads):
    """``old`` is read by the last store only, after ``x`` was overwritten. With 12 other
    loads not every load fits up front, so keeping the old value is the scheduler's job."""
    from gint.host.frontend import bytecode

    @bytecode
    def update(x, z, out):
        old = x.load()
        total = z.load(0)
        for k in range(1, n_loads):
            total = total + z.load(k) * (k + 1.0)
        x.store(total)
        out.store(old * 2.0 - total)

    code = [op for op, _ in update.program.code]
    load = isa.BY_NAME["LOAD"].opcode
    first_other = next(i for i, op in enumerate(code) if op != load)
    assert (load in code[first_other:]) == (n_loads > 4)  # the big case does not hoist everything
    x = torch.randn(target.rows, target.cols, device=target.device)
    z = torch.randn(target.rows, target.cols, device=target.device)
    out = torch.full_like(x, -5.0)
    old = x.clone()
    update(x, z, out)
    padded = torch.nn.functional.pad(z, (0, n_loads))
    total = padded[:, : target.cols]
    for k in range(1, n_loads):  # the program's order of additions: same roundings
        total = total + padded[:, k : k + target.cols] * (k + 1)
    torch.testing.assert_close(x, total)
    torch.testing.assert_close(out, old * 2 - total)
