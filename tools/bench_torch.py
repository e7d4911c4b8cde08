"""PyTorch baseline for `xlt bench`: time full XLM-R fine-tuning steps on CPU.

Builds a randomly initialised XLMRobertaForSequenceClassification of the given
shape (train mode, default dropout 0.1), feeds random token ids with a full
attention mask and random labels, and times complete optimisation steps
(zero_grad, forward with labels, backward, AdamW step). Prints one JSON line.

Usage:
  python tools/bench_torch.py [--hidden 256 --layers 4 --heads 4 --ffn 1024
                               --vocab 8000 --batch 8 --seq 128 --steps 10
                               --warmup 2 --threads 2 --labels 3]
  python tools/bench_torch.py --preset xlmr-base|xlmr-large [--batch ... --seq ...]
"""

import argparse
import json
import os
import statistics
import sys
import time

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
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="use the model shape of a standard checkpoint (overrides shape flags)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--labels", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.preset:
        for k, v in PRESETS[args.preset].items():
            setattr(args, k, v)
    if args.steps < 1:
        p.error("--steps must be at least 1")
    if args.vocab <= 5:
        p.error("--vocab must be larger than 5")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    config = XLMRobertaConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        intermediate_size=args.ffn,
        max_position_embeddings=args.seq + 2,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
        num_labels=args.labels,
    )
    model = XLMRobertaForSequenceClassification(config)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    input_ids = torch.randint(5, args.vocab, (args.batch, args.seq), dtype=torch.int64)
    attention_mask = torch.ones(args.batch, args.seq, dtype=torch.int64)
    labels = torch.randint(0, args.labels, (args.batch,), dtype=torch.int64)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        out.loss.backward()
        optimizer.step()
        return float(out.loss.detach())

    for _ in range(args.warmup):
        step()
    times = []
    loss = float("nan")
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)

    median = statistics.median(times)
    result = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "preset": args.preset,
        "threads": args.threads,
        "hidden": args.hidden,
        "layers": args.layers,
        "heads": args.heads,
        "ffn": args.ffn,
        "vocab": args.vocab,
        "batch": args.batch,
        "seq": args.seq,
        "labels": args.labels,
        "steps": args.steps,
        "warmup": args.warmup,
        "attn": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()),
        "ms_per_step": round(median * 1e3, 3),
        "ms_per_step_min": round(min(times) * 1e3, 3),
        "tokens_per_s": round(args.batch * args.seq / median, 2),
        "last_loss": round(loss, 6),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
