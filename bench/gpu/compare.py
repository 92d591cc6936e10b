#!/usr/bin/env python3
"""Side-by-side table: attnlab's Vulkan dense attention, fp32 and fp16 tensor cores (device time, from
attnlab-bench's JSON) and PyTorch on the same shapes (one head, batch 1), in one run on one GPU:
eager fp32 softmax(q·kᵀ)·v, scaled_dot_product_attention (default backend, fp32 and fp16) and SDPA
with the flash backend forced (fp16). Ratios are throughputs: >1 means attnlab is faster.

usage: compare.py BENCH_JSON   (prints a Markdown table; needs torch with CUDA)
"""
import json
import re
import sys

import torch


def time_ms(fn, repeats=50):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def torch_ms(n, d, causal, dtype, flash=False):
    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(1, 1, n, d, device="cuda", dtype=dtype, generator=g) for _ in range(3))
    run = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if not flash:
        return time_ms(run)
    try:  # torch >= 2.3
        from torch.nn.attention import SDPBackend, sdpa_kernel
        ctx = sdpa_kernel([SDPBackend.FLASH_ATTENTION])
    except ImportError:
        ctx = torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)
    try:
        with ctx:
            return time_ms(run)
    except RuntimeError:
        return float("nan")  # no flash kernel for this shape / card


def eager_ms(n, d, causal):
    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(n, d, device="cuda", generator=g) for _ in range(3))
    mask = torch.ones(n, n, device="cuda", dtype=torch.bool).tril() if causal else None

    def run():
        s = (q @ k.T) / d ** 0.5
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        return torch.softmax(s, -1) @ v

    return time_ms(run)


def main():
    data = json.load(open(sys.argv[1]))
    ours = {}  # (variant, causal, n, d) -> ms (device timestamps, median of the repetitions)
    for b in data["benchmarks"]:
        m = re.match(r"dense/(vulkan|vulkan-fp16)/(full|causal)/N:(\d+)/d:(\d+)(?:/repeats:\d+)?/manual_time(_median)?$",
                     b["name"])
        if not m or b.get("error_occurred"):
            continue
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        ours[(m.group(1), m.group(2) == "causal", int(m.group(3)), int(m.group(4)))] = b["real_time"]
    shapes = sorted({key[1:] for key in ours}, key=lambda s: (s[0], s[2], s[1]))
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| N | d | mask | attnlab fp32 ms | attnlab fp16 ms | torch eager fp32 ms | SDPA fp32 ms | SDPA fp16 ms "
          "| SDPA fp16 flash ms | fp16 throughput vs SDPA fp16 | fp32 throughput vs eager fp32 |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    nan = float("nan")
    for causal, n, d in shapes:
        f32 = ours.get(("vulkan", causal, n, d), nan)
        f16 = ours.get(("vulkan-fp16", causal, n, d), nan)
        eager = eager_ms(n, d, causal)
        sdpa32 = torch_ms(n, d, causal, torch.float32)
        sdpa16 = torch_ms(n, d, causal, torch.float16)
        flash16 = torch_ms(n, d, causal, torch.float16, flash=True)
        print(f"| {n} | {d} | {'causal' if causal else 'full'} | {f32:.3f} | {f16:.3f} | {eager:.3f} | {sdpa32:.3f} | "
              f"{sdpa16:.3f} | {flash16:.3f} | {sdpa16 / f16:.2f}× | {eager / f32:.2f}× |")


if __name__ == "__main__":
    main()
