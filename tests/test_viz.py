"""gint.viz: programs drawn for notebooks and reports (issue 18)."""

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import gint  # noqa: E402
from gint.host.disasm import assemble  # noqa: E402
from gint.viz import depth_after, draw_program  # noqa: E402


def test_a_row_program_is_drawn_with_its_loops_and_tensors(tmp_path):
    x, r = torch.randn(4, 300), torch.randn(4, 300)
    report = gint.explain(lambda x, r: F.layer_norm(x + r, (300,)), x, r)
    program = report.subgraphs[0].callable.executable.program
    fig = draw_program(report.subgraphs[0])
    ax = fig.axes[0]
    labels = [label.get_text() for label in ax.get_xticklabels()]
    assert len(labels) == len(program.code) and labels[-1] == "halt" and "nextchunk" in labels[-2]
    assert len(ax.patches) == len(program.loop_bodies()) == 3  # the three walks over the row
    tensors = [text.get_text() for text in ax.texts]
    assert tensors.count("arg0_1") == 3 and tensors.count("arg1_1") == 3 and len(tensors) == 7
    fig.savefig(tmp_path / "program.png")
    assert (tmp_path / "program.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_depths_follow_each_instruction():
    program = assemble(".slots a, b, out\nload %0\nload %1\nadd\ndup\nmul\nstore %2\nhalt\n")
    from gint.host.verifier import verify

    depths = verify(program)
    assert depths == [0, 1, 2, 1, 2, 1, 0]
    assert depth_after(program, depths) == [1, 2, 1, 2, 1, 0, 0]
    assert len(draw_program(program).axes[0].patches) == 0  # no loops: nothing shaded


def test_anything_else_is_refused_by_name():
    with pytest.raises(TypeError, match="not str"):
        draw_program("load %0")


def test_partitions_are_drawn_by_subgraph(tmp_path):
    from gint.viz import draw_partitions

    lin = torch.nn.Linear(32, 32).requires_grad_(False)

    def f(x):
        h = lin(F.layer_norm(x, (32,)))  # the matmul runs eagerly between two gint subgraphs
        return torch.sigmoid(h) * h

    report = gint.explain(f, torch.randn(4, 32))
    nodes = report.partition_maps[0]
    assert len(report.subgraphs) == 2 and {n.subgraph for n in nodes} == {None, 0, 1}
    assert all(n.reason for n in nodes if n.label == "addmm")
    fig = draw_partitions(report, title="layer norm, linear, silu")
    ax = fig.axes[0]
    assert len(ax.collections) == len(nodes)  # one marker per node
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "gint subgraph 0", "gint subgraph 1", "eager", "input / output",
    ]  # fmt: skip
    fig.savefig(tmp_path / "partitions.png")
    assert draw_partitions(f, torch.randn(4, 32)).axes  # a function is explained first


def test_a_report_without_graphs_is_refused():
    from gint.conductor.report import Report
    from gint.viz import draw_partitions

    with pytest.raises(ValueError, match="no compiled graph"):
        draw_partitions(Report())
