"""Which attention op BERT's forward reaches through gint on this device (issue 30):
the fused-SDPA choice for BERT's real q/k/v/mask in eager, under a FakeTensorMode, and
the attention ops in the graph gint traces. ``python tools/sdpa_probe.py [cuda|cpu]``."""

import collections
import sys

import torch

from gint.bench.models import build
from gint.conductor import backend, register_backend

CHOICES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}


def choices(device: str, dtype: torch.dtype) -> None:
    q, k, v = (torch.randn(8, 12, 512, 64, device=device, dtype=dtype) for _ in range(3))
    keep = torch.ones(8, 1, 512, 512, device=device, dtype=torch.bool)
    additive = torch.zeros(8, 1, 512, 512, device=device, dtype=dtype)
    # transformers 5.17's BERT mask under torch.compile: a bool row mask expanded over keys
    rows = torch.ones(8, 1, 512, 1, device=device, dtype=torch.bool).expand(8, 1, 512, 512)
    for name, mask in (("no mask", None), ("bool mask", keep), ("additive mask", additive),
                       ("additive expanded", additive.expand(8, 12, 512, 512)),
                       ("bool, keys stride 0", rows), ("same, contiguous", rows.contiguous())):
        eager = CHOICES.get(torch._fused_sdp_choice(q, k, v, mask), "?")
        if device == "cuda":
            from gint.bench.timing import device_time_us

            eager += f" {device_time_us(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)):7.1f} us"
        from torch._subclasses.fake_tensor import FakeTensorMode

        with FakeTensorMode(allow_non_fake_inputs=True) as mode:
            fq, fk, fv = (mode.from_tensor(t) for t in (q, k, v))
            fm = None if mask is None else mode.from_tensor(mask)
            fake = CHOICES.get(torch._fused_sdp_choice(fq, fk, fv, fm), "?")
        print(f"  {dtype} {name:<18} eager choice {eager:<10} fake choice {fake}")


def traced_ops(device: str, dtype: torch.dtype) -> collections.Counter:
    seen = collections.Counter()
    real = backend.trace_for_inference

    def spy(gm, example_inputs, table):
        seen[f"grad enabled while tracing: {torch.is_grad_enabled()}"] += 1
        traced = real(gm, example_inputs, table)
        if traced is None:
            seen["(went through AOT autograd)"] += 1
            return None
        for node in traced.graph.nodes:
            name = str(node.target)
            if node.op == "call_function" and any(w in name for w in ("attention", "bmm", "amax", "softmax")):
                seen[name] += 1
        return traced

    backend.trace_for_inference = spy
    try:
        torch._dynamo.reset()
        model = build("bert").to(device, dtype).eval()
        ids = torch.randint(0, model.config.vocab_size, (8, 512), device=device)
        with torch.no_grad():
            torch.compile(model, backend="gint")(ids)
    finally:
        backend.trace_for_inference = real
    return seen


if __name__ == "__main__":
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"
    register_backend()
    for dtype in (torch.bfloat16, torch.float32):
        choices(device, dtype)
    for dtype in (torch.bfloat16,):
        print(f"  BERT {dtype} through gint:", dict(traced_ops(device, dtype)))
