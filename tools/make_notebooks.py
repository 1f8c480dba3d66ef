"""Write and execute the notebooks in notebooks/ (outputs are committed).

Run: python tools/make_notebooks.py   (CPU machines run the kernel under Numba's simulator)
"""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell

TOUR = [
    md("# A tour of gint\n\nOne pre-built interpreter kernel runs every graph `torch.compile` hands to the "
       "`gint` backend. This notebook compiles a function, shows how it was partitioned, prints the bytecode "
       "the kernel runs, and checks the result against eager PyTorch. Without a GPU it runs the real kernel "
       "under Numba's CUDA simulator on small CPU tensors."),
    code("import os, torch\n"
         "if not torch.cuda.is_available():\n"
         "    os.environ.setdefault('NUMBA_ENABLE_CUDASIM', '1')  # before numba is imported\n"
         "device = 'cuda' if torch.cuda.is_available() else 'cpu'\n"
         "import gint\n"
         "device"),
    md("## A function with a supported chain and one unsupported operator\n`flip` has no gint lowering, so it "
       "runs eagerly; everything around it becomes gint subgraphs."),
    code("def block(x, y, z):\n"
         "    h = torch.relu(x * y - 0.5) * (z.abs() + 1)\n"
         "    h = torch.where(h > 1.0, h / (h + 1), h)\n"
         "    return h - torch.flip(y, [0]) * 0.01\n\n"
         "x, y, z = (torch.randn(4096, device=device) for _ in range(3))\n"
         "report = gint.explain(block, x, y, z)\n"
         "print(report)"),
    md("## The bytecode\nEach line: index, instruction, operand, and the stack depth before and after. The "
       "kernel has one case per instruction *and* depth, so its stack lives in registers."),
    code("print(report.subgraphs[0].disassembly)"),
    md("## Run and check against eager"),
    code("compiled = torch.compile(block, backend='gint')\n"
         "got, want = compiled(x, y, z), block(x, y, z)\n"
         "torch.testing.assert_close(got, want)\n"
         "print('max abs error', (got - want).abs().max().item())\n"
         "gint.counters()"),
    md("## Training\nThe backward graph goes through gint too."),
    code("w = torch.randn(4096, device=device, requires_grad=True)\n"
         "loss = torch.compile(lambda w: (torch.relu(w * x) * y).sum(), backend='gint')(w)\n"
         "loss.backward()\n"
         "w_ref = w.detach().clone().requires_grad_()\n"
         "(torch.relu(w_ref * x) * y).sum().backward()\n"
         "torch.testing.assert_close(w.grad, w_ref.grad)\n"
         "print('gradients match')"),
    md("## Writing a program by hand\n`@bytecode` traces Python over tensor slots into a verified program."),
    code("from gint.host.frontend import bytecode, where\n\n"
         "@bytecode\n"
         "def leaky(x, out):\n"
         "    v = x.load()\n"
         "    out.store(where(v > 0, v, v * 0.01))\n\n"
         "print(leaky.listing())\n"
         "out = torch.empty_like(x)\n"
         "leaky(x, out)\n"
         "torch.testing.assert_close(out, torch.nn.functional.leaky_relu(x))"),
    md("## Math functions and activations\n\nOne `MATH` instruction applies any function of the table "
       "(`gint.isa.FUNCTIONS`) to the math register; chained functions run back to back. `exp`, the hottest, "
       "is also an instruction of its own (`exp` below), and `sigmoid` is built from it (`neg`, `exp`, "
       "`addi`, `rdivi`): no parking, the elements unrolled. The full list of operators is in `docs/ops.md`."),
    code("import warnings\n"
         "import torch.nn.functional as F\n\n"
         "warnings.simplefilter('ignore', RuntimeWarning)  # the simulator's numpy warns on x/0; the GPU does not\n\n"
         "def act(x, y):\n"
         "    return F.gelu(x) * torch.sigmoid(y) + torch.exp(torch.sin(x)) - F.silu(y)\n\n"
         "x, y = (torch.randn(1000, device=device) for _ in range(2))\n"
         "report = gint.explain(act, x, y)\n"
         "print(report)\n"
         "print(report.subgraphs[0].disassembly)\n"
         "torch.testing.assert_close(torch.compile(act, backend='gint')(x, y), act(x, y))"),
    md("## Reductions: layer_norm and softmax as one row program\n\nA subgraph with reductions becomes a *row "
       "program*: each warp walks whole rows, one `nextchunk` loop per level of reduction, `reduce` combines "
       "the warp's partial results, and row constants (the mean, `rsqrt(var + eps)`) are computed once per row "
       "and kept at the bottom of the stack for the last loop."),
    code("def norm_then_softmax(x, w, b):\n"
         "    return torch.softmax(F.layer_norm(x, x.shape[-1:], w, b) * 2, dim=-1)\n\n"
         "x = torch.randn(6, 300, device=device)\n"
         "w, b = torch.randn(300, device=device), torch.randn(300, device=device)\n"
         "report = gint.explain(norm_then_softmax, x, w, b)\n"
         "print(report)\n"
         "print(report.subgraphs[0].disassembly)\n"
         "torch.testing.assert_close(torch.compile(norm_then_softmax, backend='gint')(x, w, b), "
         "norm_then_softmax(x, w, b))"),
    md("## New shapes cost no compile\n\nThe bytecode holds no size (a size used as a number becomes a 0-d "
       "tensor input; a mean divides by the `rowlen` instruction). With `dynamic=True`, 10 new shapes build "
       "no program and compile no graph: only the tensor table changes."),
    code("def norm(x):\n"
         "    return (x - x.sum(dim=-1, keepdim=True) / x.shape[-1]) * 0.5\n\n"
         "torch._dynamo.reset()\n"
         "fn = torch.compile(norm, backend='gint', dynamic=True)\n"
         "fn(torch.randn(3, 40, device=device))\n"
         "before = gint.counters()\n"
         "for rows, cols in [(2, 7), (5, 33), (4, 64), (7, 5), (3, 100), (6, 17), (2, 250), (8, 9), (5, 48), (3, 3)]:\n"
         "    x = torch.randn(rows, cols, device=device)\n"
         "    torch.testing.assert_close(fn(x), norm(x))\n"
         "after = gint.counters()\n"
         "print({k: after[k] - before[k] for k in after})"),
    md("## Speed on the H100\nThe latest committed benchmark (`python -m gint.bench` on an H100 writes it to "
       "`reports/`): device time per call against eager PyTorch, TorchInductor and the device's copy "
       "bandwidth, all measured in one run. `reports/perf-notes.md` explains each kernel change behind these "
       "numbers."),
    code("import json, pathlib\n"
         "from IPython.display import Image\n"
         "latest = sorted(pathlib.Path('reports').glob('bench-suite-*.json'))[-1]\n"
         "bench = json.loads(latest.read_text())\n"
         "env = bench['environment']\n"
         "print(latest.name, '|', env['device'], '| torch', env['torch'], '| numba-cuda', env['numba_cuda'])\n"
         "print(f\"{'case':<30}{'gint/copy':>10}{'x eager':>9}{'gint/inductor':>15}\")\n"
         "for row in bench['streaming']:\n"
         "    print(f\"{row['case']:<30}{row['gint_bw_fraction']:>10.3f}{row['speedup_vs_eager']:>9.2f}"
         "{row['gint_vs_inductor']:>15.2f}\")\n"
         "for row in bench.get('reductions', []):\n"
         "    print(f\"{row['case']:<30}{row['gint_bw_fraction']:>10.3f}{row['speedup_vs_eager']:>9.2f}"
         "{row['gint_vs_inductor']:>15.2f}\")\n"
         "print('first call of a new graph:', bench['compile_latency'])\n"
         "Image(filename=str(latest.with_name(latest.stem + '-bandwidth.png')))"),
]


def build(name: str, cells) -> None:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    path = ROOT / "notebooks" / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(notebook, path)
    print("wrote", path)


if __name__ == "__main__":
    build("01_tour.ipynb", TOUR)
