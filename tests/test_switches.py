"""gint.kernel.switches: chains of switches merged into one, with the function's
behaviour unchanged (run on the host through llvmlite's JIT), and the shipped kernel's
dispatch a single jump table."""

import ctypes
import re

import pytest

from gint import isa
from gint.kernel.nvptx import dispatch_keys, halt_keys
from gint.kernel.ptx_dispatch import tighten_dispatch
from gint.kernel.switches import merge_switch_chains, without_range_check

llvm = pytest.importorskip("llvmlite.binding")

CHAIN = """
define i32 @dispatch(i32 %k) {
entry:
  switch i32 %k, label %s2 [
    i32 0, label %a
    i32 1, label %b
  ]

s2:                                               ; preds = %entry
  switch i32 %k, label %s3 [
    i32 2, label %c
    i32 3, label %a
  ]

s3:                                               ; preds = %s2
  switch i32 %k, label %other [
    i32 4, label %A_VALUE_FROM_S3
    i32 5, label %c
  ]

a:
  %pa = phi i32 [ 10, %entry ], [ 10, %s2 ]
  ret i32 %pa

b:
  ret i32 20

c:
  %pc = phi i32 [ 30, %s2 ], [ 30, %s3 ]
  ret i32 %pc

other:
  %po = phi i32 [ -1, %s3 ]
  ret i32 %po
}
"""


def run_all(ir: str, keys) -> list[int]:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(ir)
    module.verify()
    machine = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    function = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32)(engine.get_function_address("dispatch"))
    return [function(k) for k in keys]


def switch_sizes(ir: str) -> list[int]:
    return [m.group(1).count("label") for m in re.finditer(r"switch i32 [^\[]*\[(.*?)\]", ir, re.S)]


def chain(target_of_four: str, a_from_s3: int | None) -> str:
    ir = CHAIN.replace("%A_VALUE_FROM_S3", target_of_four)
    if a_from_s3 is not None:
        ir = ir.replace("[ 10, %s2 ]", f"[ 10, %s2 ], [ {a_from_s3}, %s3 ]")
    return ir


@pytest.mark.parametrize(
    "ir, sizes_after",
    [
        (chain("%b", None), [6]),  # the whole chain becomes one switch
        (chain("%a", 10), [6]),  # a block reached from two switches with the same phi value
        (chain("%a", 11), [4, 2]),  # different values for one merged predecessor: that pair stays apart
    ],
    ids=["plain", "shared-target", "phi-conflict"],
)
def test_merged_chain_behaves_the_same(ir, sizes_after):
    merged, merges = merge_switch_chains(ir)
    assert switch_sizes(ir) == [2, 2, 2]
    assert switch_sizes(merged) == sizes_after
    assert merges == 3 - len(sizes_after)
    keys = range(-2, 9)
    assert run_all(merged, keys) == run_all(ir, keys)


def test_switch_on_another_value_is_left_alone():
    ir = chain("%b", None).replace("switch i32 %k, label %other", "switch i32 %j, label %other")
    ir = ir.replace("define i32 @dispatch(i32 %k)", "define i32 @dispatch(i32 %k, i32 %j)")
    merged, merges = merge_switch_chains(ir)
    assert merges == 1 and switch_sizes(merged) == [4, 2]


def test_shipped_kernel_dispatches_through_one_jump_table():
    """Every dispatch key of the instruction table lands in one ``brx.idx`` table."""
    from gint.kernel import interpreter
    from gint.kernel.config import DEFAULT, for_capability

    ptx = interpreter.prebuilt_path((9, 0), for_capability((9, 0), DEFAULT)).read_text()
    keys = {
        isa.dispatch_key(ins.opcode, d) for ins in isa.TABLE if ins is not isa.HALT for d in isa.specializations(ins)
    }
    largest = max(m.group(1).count("$L__BB") for m in re.finditer(r"\.branchtargets([^;]*);", ptx))
    assert largest >= max(keys) - min(keys) + 1


def test_halt_gets_a_case_and_the_default_becomes_unreachable():
    merged, _ = merge_switch_chains(chain("%b", None))
    halt_keys = frozenset({6, 7})  # stand for HALT's: keys no case holds, which went to the default
    tightened, found = without_range_check(merged, frozenset(range(6)), halt_keys)
    assert found and "unreachable" in tightened and switch_sizes(tightened) == [8]
    keys = range(0, 8)  # every key a verified program holds
    assert run_all(tightened, keys) == run_all(chain("%b", None), keys)
    # a switch over other keys is left alone
    assert without_range_check(merged, frozenset(range(5)), frozenset({5})) == (merged, False)


DISPATCH_PTX = """
.visible .entry kernel(
	.param .u64 code
)
{
	mov.b32 	%r10, %r2;
	mov.b32 	%r11, %r3;
$L__BB0_1:
	mov.b32 	%r6, %r11;
	setp.gt.u32 	%p1, %r10, 2;
	@%p1 bra 	$L__BB0_9;
	ld.global.b32 	%r7, [%rd1+8];
	ld.global.b32 	%r11, [%rd1+12];
	mov.b32 	%r20, %r10;
	mov.b32 	%r10, %r7;
	$L_brx_0: .branchtargets
		$L__BB0_2,
		$L__BB0_3,
		$L__BB0_9;
	brx.idx 	%r20, $L_brx_0;
$L__BB0_2:
	add.s32 	%r30, %r6, 1;
	mov.b32 	%r10, %r7;
	bra.uni 	$L__BB0_1;
$L__BB0_3:
	bra.uni 	$L__BB0_1;
$L__BB0_9:
	ret;
}
"""


def test_dispatch_ptx_loses_its_range_check_and_loads_the_next_key_in_place():
    tightened, done = tighten_dispatch(DISPATCH_PTX)
    assert done == ["range check", "key load"]
    block = tightened.split("$L__BB0_1:")[1].split("$L__BB0_2:")[0]
    lines = [line.strip() for line in block.strip().splitlines()]
    assert lines[0] == "mov.b32 \t%r20, %r10;"  # the current key into the index first
    assert "ld.global.b32 \t%r10, [%rd1+8];" in lines  # then the next key straight into its register
    assert "setp" not in tightened and "%r7" not in tightened
    assert tighten_dispatch(tightened) == (tightened, [])


def test_dispatch_ptx_keeps_the_copy_where_a_case_reads_the_key():
    ptx = DISPATCH_PTX.replace("add.s32 \t%r30, %r6, 1;", "add.s32 \t%r30, %r10, 1;")
    tightened, done = tighten_dispatch(ptx)
    assert done == ["range check"] and "mov.b32 \t%r10, %r7;" in tightened


def test_shipped_kernels_dispatch_without_a_range_check():
    """Both shipped kernels index the dispatch table with the key directly: HALT has an
    entry (key 0), nothing compares the key first, and the next key is loaded in place."""
    from gint.kernel import interpreter
    from gint.kernel.config import DEFAULT, TILED, for_capability

    configs = [config for config in (DEFAULT, TILED) if config.direct_dispatch]
    if not configs:
        pytest.skip("KernelConfig.direct_dispatch is off in the shipped kernels")
    for config in configs:
        ptx = interpreter.prebuilt_path((9, 0), for_capability((9, 0), config)).read_text()
        assert tighten_dispatch(ptx) == (ptx, []), config
        table = max(re.findall(r"\.branchtargets([^;]*);", ptx), key=len)
        targets = re.findall(r"\$L__BB\d+_\d+", table)
        assert len(targets) == max(dispatch_keys()) + 1
        block = ptx.split(".branchtargets" + table)[0].rsplit("$L__BB", 1)[1]
        assert "setp" not in block and "bra" not in block
        # no key a verified program holds lands where the unreachable default went (an exit)
        halts = {targets[key] for key in halt_keys()}
        holes = set(targets) - {targets[key] for key in dispatch_keys()} - halts
        assert len(halts) == 1 and halts.isdisjoint({targets[key] for key in dispatch_keys()})
        for hole in holes:
            assert re.search(re.escape(hole) + r":\s*// begin inline asm\s*exit;", ptx), hole
