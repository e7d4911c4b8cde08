"""PyTorch baseline for `xlt embed`: sentence-embedding throughput on CPU.

Embeds every non-empty line of FILE with a transformers AutoModel (eval mode,
no_grad), mean-pooling the last hidden state over the attention mask. As a fair
baseline, sentences are sorted by token length and batched so that padding is
minimal. The timed region covers tokenization, the forward passes and pooling;
one untimed warm-up batch runs first. Prints one JSON line.

Usage:
  python tools/bench_torch_embed.py --model DIR --input FILE
                                    [--batch-size 32] [--max-seq-len 128] [--threads 2]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


def embed_all(model, tok, sentences, batch_size: int, max_len: int) -> torch.Tensor:
    lengths = [
        len(ids)
        for ids in tok(sentences, truncation=True, max_length=max_len)["input_ids"]
    ]
    order = sorted(range(len(sentences)), key=lambda i: lengths[i])
    out = torch.empty(len(sentences), model.config.hidden_size, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([sentences[i] for i in idx], padding=True, truncation=True,
                      max_length=max_len, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[idx] = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="local model folder")
    p.add_argument("--input", required=True, help="text file, one sentence per line")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    with open(args.input, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    if not sentences:
        p.error(f"no sentences in {args.input}")

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModel.from_pretrained(args.model, dtype=torch.float32)
    model.eval()

    embed_all(model, tok, sentences[: args.batch_size], args.batch_size, args.max_seq_len)

    t0 = time.perf_counter()
    emb = embed_all(model, tok, sentences, args.batch_size, args.max_seq_len)
    seconds = time.perf_counter() - t0
    assert torch.isfinite(emb).all()

    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "model": os.path.basename(os.path.normpath(args.model)),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "max_seq_len": args.max_seq_len,
        "sentences": len(sentences),
        "seconds": round(seconds, 4),
        "sentences_per_s": round(len(sentences) / seconds, 2),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
