"""gint.kernel.fastlive: the same block liveness as numba's ``compute_live_map``, and
numba's own function back in place after ``installed()``, also after an exception."""

import json
import lzma
import random
import sys
import types
from pathlib import Path

import numba.core.analysis as core_analysis
import numba.core.ir_utils as core_ir_utils
import numba.cuda.core.analysis as cuda_analysis
import numba.cuda.core.ir_utils as cuda_ir_utils
import numpy as np
import pytest
from numba import njit
from numba.cuda.core.controlflow import CFGraph

from gint.kernel import fastlive

NUMBA_ORIGINALS = (cuda_analysis.compute_live_map, core_analysis.compute_live_map)


class Call:
    """One ``compute_live_map`` call, copied when it happened (numba goes on mutating its
    IR): the answers to the cfg queries it makes, the block labels, the use and def maps."""

    def __init__(self, succs: dict, preds: dict, blocks, var_use_map: dict, var_def_map: dict):
        self.succs, self.preds, self.blocks = succs, preds, dict.fromkeys(blocks)
        self.use = {b: set(v) for b, v in var_use_map.items()}
        self.define = {b: set(v) for b, v in var_def_map.items()}

    @classmethod
    def of(cls, cfg, blocks, var_use_map, var_def_map):
        succs = {b: [s for s, _ in cfg.successors(b)] for b in var_def_map}
        preds = {b: [p for p, _ in cfg.predecessors(b)] for b in blocks}
        return cls(succs, preds, blocks, var_use_map, var_def_map)

    def successors(self, block):
        return ((s, None) for s in self.succs.get(block, ()))

    def predecessors(self, block):
        return ((p, None) for p in self.preds.get(block, ()))

    def args(self):
        return self, self.blocks, self.use, self.define


def _loops(a, n):
    total = 0.0
    for i in range(n):
        if a[i] > 0:
            for j in range(i):
                total += a[j]
                if total > 100:
                    break
        elif a[i] < -1:
            continue
        else:
            total -= 1
    while total > 10:
        total /= 2
    return total


def _branches(x, k):
    acc = np.zeros(4)
    for i in range(x.shape[0]):
        v = x[i]
        if k == 0:
            acc[0] += v
        elif k == 1:
            acc[1] -= v
        elif k == 2:
            acc[2] = max(acc[2], v)
        else:
            m = i
            while m > 0 and v > 0:
                m //= 2
                v -= 1.0
            acc[3] += m
    return acc


def _dispatch(code, x):
    # a tiny interpreter: a loop around a chain of ifs, the kernel's shape
    stack = np.zeros(8)
    sp = 0
    pc = 0
    while pc < code.shape[0]:
        op = code[pc]
        if op == 0:
            stack[sp] = x[pc % x.shape[0]]
            sp += 1
        elif op == 1:
            sp -= 1
            stack[sp - 1] += stack[sp]
        elif op == 2:
            sp -= 1
            stack[sp - 1] *= stack[sp]
        elif op == 3:
            stack[sp - 1] = -stack[sp - 1]
        elif op == 4:
            if stack[sp - 1] < 0:
                pc += 1
        elif op == 5:
            stack[sp - 1] = max(stack[sp - 1], 0.0)
        elif op == 6:
            stack[sp] = stack[sp - 1]
            sp += 1
        elif op == 7:
            sp -= 1
        else:
            break
        pc += 1
    return stack[0]


@pytest.fixture(scope="module")
def numba_calls() -> list:
    """Every ``compute_live_map`` call numba makes while compiling three functions with
    loops, branches and a dispatch chain, with numba's answer for each."""
    calls = []

    def recording(cfg, blocks, var_use_map, var_def_map):
        snapshot = Call.of(cfg, blocks, var_use_map, var_def_map)
        result = original(cfg, blocks, var_use_map, var_def_map)
        calls.append((snapshot, {b: set(v) for b, v in result.items()}))
        return result

    original = core_analysis.compute_live_map
    core_analysis.compute_live_map = core_ir_utils.compute_live_map = recording
    try:
        njit(_loops)(np.arange(5.0), 5)
        njit(_branches)(np.arange(6.0), 3)
        njit(_dispatch)(np.array([0, 6, 1, 3, 4, 0, 2, 5, 7, 8]), np.arange(3.0))
    finally:
        core_analysis.compute_live_map = core_ir_utils.compute_live_map = original
    assert len(calls) > 10 and max(len(s.blocks) for s, _ in calls) > 20
    return calls


def _same(got, expected):
    assert type(got) is dict and list(got) == list(expected)
    assert all(type(v) is set for v in got.values())
    assert got == expected


def test_same_answer_as_numba_on_numba_ir(numba_calls):
    for snapshot, expected in numba_calls:
        _same(fastlive.live_map(*snapshot.args()), expected)
        _same(cuda_analysis.compute_live_map(*snapshot.args()), expected)  # numba-cuda's copy agrees


def test_same_answer_as_numba_on_the_kernels_biggest_call():
    """The interpreter function's biggest call in a kernel build, recorded with numba's
    answer (it took numba 232 s, this solver 0.5 s): ``tests/data/kernel_live_map.json.xz``."""
    record = json.loads(lzma.decompress((Path(__file__).parent / "data" / "kernel_live_map.json.xz").read_bytes()))
    labels, names = record["labels"], record["names"]

    def by_label(lists, items):
        return {b: {items[i] for i in ids} for b, ids in zip(labels, lists)}

    call = Call(
        by_label(record["succs"], labels),
        by_label(record["preds"], labels),
        labels,
        by_label(record["use"], names),
        by_label(record["define"], names),
    )
    assert len(labels) == 1346 and len(names) == 14826
    _same(fastlive.live_map(*call.args()), by_label(record["expected"], names))


def test_answers_are_fresh_sets(numba_calls):
    snapshot, _ = max(numba_calls, key=lambda call: len(call[0].blocks))
    first, second = fastlive.live_map(*snapshot.args()), fastlive.live_map(*snapshot.args())
    assert all(first[b] is not second[b] for b in first)
    assert all(first[b] is not snapshot.use[b] for b in first)


def _graph(blocks: list, edges: list) -> CFGraph:
    cfg = CFGraph()
    for b in blocks:
        cfg.add_node(b)
    for src, dst in edges:
        cfg.add_edge(src, dst)
    cfg.set_entry_point(blocks[0])
    cfg.process()
    return cfg


def _use_def(blocks, names, rng, per_block):
    use = {b: set(rng.sample(names, rng.randint(0, per_block))) for b in blocks}
    define = {b: set(rng.sample(names, rng.randint(0, per_block))) for b in blocks}
    return use, define


def _dispatch_chain(cases: int, names: int, seed: int):
    """The interpreter's shape: a loop whose body is a chain of compares, each jumping
    to its case, and every case back to the loop head. Labels are numba-like offsets."""
    rng = random.Random(seed)
    head, done = 2, 4
    compares = [10 + 4 * i for i in range(cases)]
    bodies = [12 + 4 * i for i in range(cases)]
    blocks = [0, head, done, *compares, *bodies]
    edges = [(0, head), (head, compares[0]), (head, done)]
    for i, (compare, body) in enumerate(zip(compares, bodies)):
        edges += [(compare, body), (compare, compares[i + 1] if i + 1 < cases else head), (body, head)]
    use, define = _use_def(blocks, [f"v{i}.{rng.randint(0, 3)}" for i in range(names)], rng, 6)
    return _graph(blocks, edges), dict.fromkeys(blocks), use, define


@pytest.mark.parametrize("cases,names", [(150, 400), (40, 30)])
def test_same_answer_on_a_long_dispatch_chain(cases, names):
    args = _dispatch_chain(cases, names, seed=cases)
    expected = cuda_analysis.compute_live_map(*args)
    _same(fastlive.live_map(*args), expected)
    _same(core_analysis.compute_live_map(*args), expected)


def test_same_answer_on_random_graphs():
    rng = random.Random(28)
    names = [f"x{i}" for i in range(40)]
    for _ in range(200):
        blocks = rng.sample(range(0, 400, 2), rng.randint(1, 25))  # labels in any order
        edges = {(rng.choice(blocks), rng.choice(blocks)) for _ in range(rng.randint(0, 3 * len(blocks)))}
        cfg = _graph(blocks, sorted(edges))  # loops, self loops, unreachable blocks
        use, define = _use_def(blocks, names, rng, 5)
        args = (cfg, dict.fromkeys(blocks), use, define)
        _same(fastlive.live_map(*args), cuda_analysis.compute_live_map(*args))


def test_leaves_graphs_numba_would_trip_on_to_numba():
    cfg = _graph([0, 2], [(0, 2)])
    blocks = {0: None}  # 2 is a successor but not a block
    assert fastlive.live_map(cfg, blocks, {0: {"a"}}, {0: set()}) is None
    assert fastlive.live_map(cfg, {0: None, 2: None}, {0: set()}, {0: set(), 2: set()}) is None
    replacement = fastlive._replacement(cuda_analysis.compute_live_map)
    assert replacement(cfg, {0: None, 2: None}, {0: {"a"}, 2: {"b"}}, {0: set(), 2: set()}) == {0: {"a"}, 2: {"b"}}


def _holders() -> dict:
    modules = ("numba.cuda.core.analysis", "numba.cuda.core.ir_utils", "numba.core.analysis", "numba.core.ir_utils")
    return {name: sys.modules[name].compute_live_map for name in modules}


def test_installed_only_inside_the_block():
    before = _holders()
    assert before["numba.cuda.core.ir_utils"] is cuda_ir_utils.compute_live_map in NUMBA_ORIGINALS
    assert not fastlive.is_installed()
    with fastlive.installed():
        assert fastlive.is_installed()
        inside = _holders()
        assert all(f.__module__ == "gint.kernel.fastlive" for f in inside.values()), inside
        assert inside["numba.cuda.core.analysis"].__wrapped__ is before["numba.cuda.core.analysis"]
        assert inside["numba.core.ir_utils"].__wrapped__ is before["numba.core.ir_utils"]
        with fastlive.installed():  # nested: still installed after the inner block
            pass
        assert fastlive.is_installed()
    assert _holders() == before
    assert not fastlive.is_installed()


def test_restored_after_an_exception_and_in_modules_imported_meanwhile():
    before = _holders()
    late = types.ModuleType("numba._gint_test_late_import")
    with pytest.raises(ZeroDivisionError):
        with fastlive.installed():
            # a module first imported during the build: ``from ... import compute_live_map``
            late.compute_live_map = cuda_analysis.compute_live_map
            sys.modules[late.__name__] = late
            1 / 0
    try:
        assert _holders() == before
        assert late.compute_live_map is before["numba.cuda.core.analysis"]
    finally:
        del sys.modules[late.__name__]


def test_numba_compiles_with_it_installed():
    with fastlive.installed():
        assert njit(_loops)(np.arange(4.0), 4) == _loops(np.arange(4.0), 4)


def test_the_kernel_build_installs_it_and_reuses_the_dev_cache(monkeypatch, tmp_path):
    """``ptx(from_source=True)`` builds once per source digest, with the solver in place
    only during the build; ``rebuild=True`` builds again. (Numba's part is stubbed.)"""
    import contextlib

    from gint.kernel import interpreter, nvptx

    builds = []

    def llvm_ir(function, signature, cc):
        builds.append(fastlive.is_installed())
        return ["; module"]

    monkeypatch.setenv("GINT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(interpreter, "SIMULATOR", False)
    kernel = types.SimpleNamespace(**{interpreter.abi.KERNEL_NAME: None})
    monkeypatch.setattr(interpreter, "kernel_module", lambda config: kernel)
    monkeypatch.setattr(interpreter, "_device_functions_for", lambda cc: contextlib.nullcontext())
    monkeypatch.setattr(nvptx, "kernel_llvm_ir", llvm_ir)
    monkeypatch.setattr(nvptx, "ptx_from_llvm_ir", lambda modules, cc, direct=False: ".entry k(\n)\n{\n}\n")

    first = interpreter.ptx((9, 0), from_source=True)
    assert builds == [True] and ".maxnreg" in first and not fastlive.is_installed()
    assert interpreter.ptx((9, 0), from_source=True) == first and builds == [True]  # the dev cache
    assert interpreter.ptx((9, 0)) == first and builds == [True]  # the cache comes before the shipped PTX
    interpreter.ptx((9, 0), rebuild=True)
    assert builds == [True, True] and not fastlive.is_installed()
