"""PTX for the interpreter from LLVM's NVPTX back end (through llvmlite), not NVVM.

Why: the interpreter's dispatch is one long ``if key == ...`` chain. LLVM folds it
into ``switch`` instructions; NVVM (CUDA 13.0) lowers every switch to a tree of
compares, 6-8 dependent branches per bytecode instruction, while LLVM's NVPTX back
end lowers a dense switch to one ``brx.idx`` jump table (once ``gint.kernel.switches``
has merged the chain of switches SimplifyCFG leaves into one). Everything before that is
Numba's own work: Numba types and lowers the kernel to LLVM IR exactly as for NVVM,
and libdevice (the math library NVVM links) is linked here from the same bitcode.

The entry points below use two Numba internals (``_compile_pyfunc_with_fixup`` and
the code library's ``llvm_strs``); ``tests/test_kernel_build.py`` builds the kernel
through this path, so a Numba upgrade that moves them fails in CI, not on a GPU.
"""

from __future__ import annotations

from functools import lru_cache

from gint import isa
from gint.kernel.ptx_dispatch import tighten_dispatch
from gint.kernel.switches import merge_switch_chains, without_range_check

PTX_ISA = "+ptx80"  # PTX 8.0: has everything the kernel uses on sm_90; CUDA 12+/13 drivers load it


def dispatch_keys() -> frozenset[int]:
    """The keys the kernel has a case for: every instruction but HALT at every depth it runs at."""
    return frozenset(
        isa.dispatch_key(ins.opcode, depth)
        for ins in isa.TABLE
        if ins is not isa.HALT
        for depth in isa.specializations(ins)
    )


def halt_keys() -> frozenset[int]:
    """HALT's keys: one per stack depth (the assembler specializes it like any row)."""
    return frozenset(isa.dispatch_key(isa.HALT.opcode, depth) for depth in isa.specializations(isa.HALT))


def kernel_llvm_ir(function, signature, cc: tuple[int, int]) -> list[str]:
    """Numba's LLVM IR modules for ``function`` compiled as a kernel for ``cc``."""
    from numba.cuda.compiler import _compile_pyfunc_with_fixup

    library, _ = _compile_pyfunc_with_fixup(function, signature, device=False, abi="numba", cc=cc)
    return list(library.llvm_strs)


@lru_cache(maxsize=1)
def _llvm():
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm


def ptx_from_llvm_ir(modules: list[str], cc: tuple[int, int], direct_dispatch: bool = False) -> str:
    """Link ``modules`` with libdevice, optimize at O3 and emit PTX for ``cc``; with
    ``direct_dispatch``, the dispatch without its range check (``KernelConfig``)."""
    from numba.cuda.cudadrv import nvvm

    llvm = _llvm()
    linked = None
    for text in modules:
        module = llvm.parse_assembly(nvvm.llvm_replace(text))
        if linked is None:
            linked = module
        else:
            linked.link_in(module)
    libdevice = llvm.parse_bitcode(nvvm.LibDevice().get())
    libdevice.triple, libdevice.data_layout = linked.triple, linked.data_layout
    linked.link_in(libdevice)
    machine = llvm.Target.from_triple("nvptx64-nvidia-cuda").create_target_machine(
        cpu=f"sm_{cc[0]}{cc[1]}", features=PTX_ISA, opt=3
    )
    linked.data_layout = str(machine.target_data)
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=3))
    builder.getModulePassManager().run(linked, builder)
    # SimplifyCFG leaves the dispatch as a chain of <= 64-case switches: merge it into one
    merged, _ = merge_switch_chains(str(linked))
    if direct_dispatch:  # the verifier proves every key: only HALT's reach the default
        merged, _ = without_range_check(merged, dispatch_keys(), halt_keys())
    module = llvm.parse_assembly(merged)
    module.verify()
    ptx = machine.emit_assembly(module)
    return tighten_dispatch(ptx)[0] if direct_dispatch else ptx
