"""The bf16 peak that MFU is measured against: time one large bf16 GEMM with torch (cuBLAS).

C = A @ B with A, B of N×N random bf16 (default N = 8192) on the GPU; a few untimed warm-up
products, then each timed product between two CUDA events; the median time gives the peak,
FLOPs = 2·N³ per product. Prints one JSON line:
  {"impl": "torch-gemm", "gpu": ..., "n": 8192, "ms_median": ..., "tflops_median": ..., ...}
tools/gpu_check.sh runs it in the same call as the benches whose MFU it divides.

Usage:
  python tools/peak_gemm.py [--n 8192 --warmup 5 --runs 20]
"""

import argparse
import json
import statistics
import sys

import torch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=8192, help="M = N = K")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"impl": "torch-gemm", "error": "no CUDA device"}), flush=True)
        return 1
    n = args.n
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=gen)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16, generator=gen)
    c = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(args.warmup):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    times = []
    for _ in range(args.runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        torch.matmul(a, b, out=c)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    flops = 2.0 * n**3
    median = statistics.median(times)
    print(
        json.dumps(
            {
                "impl": "torch-gemm",
                "torch": torch.__version__,
                "gpu": torch.cuda.get_device_name(0),
                "dtype": "bf16",
                "n": n,
                "flops": flops,
                "runs": args.runs,
                "ms_median": round(median, 4),
                "ms_min": round(min(times), 4),
                "tflops_median": round(flops / (median / 1e3) / 1e12, 1),
                "tflops_max": round(flops / (min(times) / 1e3) / 1e12, 1),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
