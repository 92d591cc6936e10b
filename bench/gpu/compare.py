#!/usr/bin/env python3
"""Side-by-side table: attnlab's Vulkan dense attention (device time, from attnlab-bench's JSON) and
PyTorch's scaled_dot_product_attention on the same shapes (one head, batch 1), in one run on one GPU.

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


def torch_ms(n, d, causal, dtype):
    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(1, 1, n, d, device="cuda", dtype=dtype, generator=g) for _ in range(3))
    return time_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal))


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
    rows = []
    for b in data["benchmarks"]:
        m = re.match(r"dense/vulkan/(full|causal)/N:(\d+)/d:(\d+)/manual_time$", b["name"])
        if not m or b.get("error_occurred"):
            continue
        causal, n, d = m.group(1) == "causal", int(m.group(2)), int(m.group(3))
        ours = b["real_time"]  # ms (device timestamps)
        fp32 = torch_ms(n, d, causal, torch.float32)
        fp16 = torch_ms(n, d, causal, torch.float16)
        eager = eager_ms(n, d, causal)
        flops = (2.0 if causal else 4.0) * n * n * d
        rows.append((n, d, "causal" if causal else "full", ours, flops / ours / 1e9, eager, fp32, fp16))
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| N | d | mask | attnlab Vulkan fp32 ms | attnlab TFLOP/s | torch eager fp32 ms | torch SDPA fp32 ms "
          "| torch SDPA fp16 ms | attnlab / SDPA fp32 |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for n, d, mask, ours, tflops, eager, fp32, fp16 in rows:
        print(f"| {n} | {d} | {mask} | {ours:.3f} | {tflops:.2f} | {eager:.3f} | {fp32:.3f} | {fp16:.3f} | "
              f"{ours / fp32:.1f}× |")


if __name__ == "__main__":
    main()
