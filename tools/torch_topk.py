#!/usr/bin/env python3
"""The torch.topk yardstick of signvote-bench --mode kernels.

Times torch.topk(x.abs(), K, sorted=False) on the GPU for the same N and K as kernel mode:
random normal fp32 data rotated over 3 buffers, median of CUDA-event times after warm-up, and a
device-to-device copy of the same 4N bytes in the same run. Prints one JSON object per line
(n, k, ms, gbps = 4N/ms, copy_gbps, reads) and exits 2 when PyTorch or a GPU is missing.

  python3 tools/torch_topk.py --counts 1M,16M,128M --densities 0.001,0.01,0.1
"""
import argparse
import json
import math
import sys


def size(text):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * mult[text[-1].upper()] if text[-1].upper() in mult else int(text)


def median_ms(torch, fn, warmup, iters):
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(warmup + iters):
        start.record()
        fn(i)
        stop.record()
        stop.synchronize()
        if i >= warmup:
            times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="1M,16M")
    p.add_argument("--densities", default="0.001,0.01,0.1")
    p.add_argument("-n", "--iters", type=int, default=10)
    p.add_argument("-w", "--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    try:
        import torch
    except ImportError:
        print("torch_topk.py: PyTorch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("torch_topk.py: no CUDA device", file=sys.stderr)
        return 2
    torch.manual_seed(a.seed)
    dev = torch.device("cuda")
    print(json.dumps({"tool": "torch_topk.py", "torch": torch.__version__,
                      "device": torch.cuda.get_device_name(0)}))
    for n in (size(c) for c in a.counts.split(",")):
        xs = [torch.randn(n, device=dev, dtype=torch.float32) for _ in range(3)]
        dst = torch.empty_like(xs[0])
        copy_ms = median_ms(torch, lambda i: dst.copy_(xs[i % 3]), a.warmup, a.iters)
        copy_gbps = 8.0 * n / (copy_ms * 1e6)
        for d in (float(t) for t in a.densities.split(",")):
            k = math.ceil(d * n)  # as signvote-bench: std::ceil(density * N) in double
            ms = median_ms(torch, lambda i: torch.topk(xs[i % 3].abs(), k, sorted=False),
                           a.warmup, a.iters)
            print(json.dumps({"kernel": "torch.topk(abs)", "n": n, "k": k, "ms": ms,
                              "gbps": 4.0 * n / (ms * 1e6), "copy_gbps": copy_gbps,
                              "reads": ms / (4.0 * n / (copy_gbps * 1e6))}), flush=True)
        del xs, dst
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
