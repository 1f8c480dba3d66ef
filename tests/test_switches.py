"""gint.kernel.switches: chains of switches merged into one, with the function's
behaviour unchanged (run on the host through llvmlite's JIT), and the shipped kernel's
dispatch a single jump table."""

import ctypes
import re

import pytest

from gint import isa
from gint.kernel.switches import merge_switch_chains

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
