"""PyTorch baseline for `xlt bench --device cuda`: time XLM-R fine-tuning steps on a GPU.

The same step as xlt's: a randomly initialised XLMRobertaForSequenceClassification (train
mode, dropout 0.1), random token ids with a full attention mask, 3 random labels; zero_grad,
forward with labels under bf16 autocast (or fp32 / fp16 with a GradScaler), backward, gradient
clipping at 1.0, AdamW(lr=1e-5, weight_decay=0.01, fused=True). SDPA attention. Optionally
`torch.compile(model)`. The model is built directly on the GPU (no host initialisation). Timed
with CUDA events after warm-up; the median is reported, with the memory: `peak_mem_bytes`
(torch's peak allocated during the timed steps), `peak_reserved_bytes` (its caching allocator's
peak) and `device_mem_bytes` (total − free device memory after the last step, the measure
`xlt bench --json` reports). Prints one JSON line, also on failure (with an "error" key).

Usage:
  python tools/bench_torch_gpu.py --preset xlmr-base|xlmr-large --batch 32 --seq 128 \
      [--steps 30 --warmup 10 --precision bf16|fp16|fp32 --compile]
"""

import argparse
import json
import os
import statistics
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()

PRESETS = {
    "xlmr-base": dict(hidden=768, layers=12, heads=12, ffn=3072, vocab=250002),
    "xlmr-large": dict(hidden=1024, layers=24, heads=16, ffn=4096, vocab=250002),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="xlmr-base")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default="bf16")
    p.add_argument("--compile", action="store_true", help="time torch.compile(model)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for k, v in PRESETS[args.preset].items():
        setattr(args, k, v)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available():
        print(json.dumps({"impl": "pytorch", "error": "no CUDA device"}), flush=True)
        return 1
    torch.manual_seed(args.seed)
    dev = torch.device("cuda")
    config = XLMRobertaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.ffn,
        max_position_embeddings=args.seq + 2,
        type_vocab_size=1,
        pad_token_id=1,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
        num_labels=3,
        attn_implementation="sdpa",
    )
    # Built on the device: initialising XLM-R Large's 560 M parameters on the host takes longer
    # than the whole timed run.
    with dev:
        model = XLMRobertaForSequenceClassification(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=True)
    runner = torch.compile(model) if args.compile else model
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[args.precision]
    scaler = torch.amp.GradScaler("cuda", enabled=args.precision == "fp16")

    input_ids = torch.randint(5, args.vocab, (args.batch, args.seq), dtype=torch.int64, device=dev)
    attention_mask = torch.ones(args.batch, args.seq, dtype=torch.int64, device=dev)
    labels = torch.randint(0, 3, (args.batch,), dtype=torch.int64, device=dev)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            out = runner(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        scaler.scale(out.loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        return out.loss.detach()

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    loss = None
    for _ in range(args.steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        loss = step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    median = statistics.median(times)
    free, total = torch.cuda.mem_get_info()
    result = {
        "impl": "pytorch-compile" if args.compile else "pytorch",
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "preset": args.preset,
        "hidden": args.hidden,
        "layers": args.layers,
        "heads": args.heads,
        "ffn": args.ffn,
        "vocab": args.vocab,
        "precision": args.precision,
        "batch": args.batch,
        "seq": args.seq,
        "steps": args.steps,
        "attn": model.config._attn_implementation,
        "ms_per_step": round(median, 3),
        "ms_min": round(min(times), 3),
        "tokens_per_s": round(args.batch * args.seq / (median / 1e3), 1),
        "peak_mem_bytes": torch.cuda.max_memory_allocated(),
        "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
        "device_mem_bytes": total - free,
        "loss": round(float(loss), 6),
    }
    print(json.dumps(result), flush=True)
    return 0


def run(argv=None) -> int:
    """main(), with a failure (out of memory, a compile error) still printed as one JSON line."""
    try:
        return main(argv)
    except Exception as e:  # noqa: BLE001
        impl = "pytorch-compile" if "--compile" in (sys.argv[1:] if argv is None else argv) else "pytorch"
        print(json.dumps({"impl": impl, "error": f"{type(e).__name__}: {e}"[:500]}), flush=True)
        raise


if __name__ == "__main__":
    sys.exit(run())
