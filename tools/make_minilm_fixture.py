"""Compute reference embeddings of all-MiniLM-L6-v2 for tests/fixtures/minilm/.

Reads tests/fixtures/minilm/sentences.txt (one sentence per line), runs the
model with transformers in float32/eval mode and writes:

* expected_mean_last.npy   float32 [n, 384]: mean of the last hidden state over
  the attention mask (including [CLS] and [SEP]), not normalised;
* expected_cls_layer3.npy  float32 [n, 384]: hidden_states[3][:, 0], i.e. the
  [CLS] vector after the third encoder layer (index 0 is the embedding output).

The model folder comes from tools/fetch_minilm.sh.

Usage:  python tools/make_minilm_fixture.py [--model DIR]
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parent.parent
MAX_LENGTH = 128


def default_model_dir() -> Path:
    cache = os.environ.get("XLT_CACHE_DIR") or os.path.join(Path.home(), ".cache", "xlt")
    return Path(cache) / "all-MiniLM-L6-v2"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_dir(),
                        help="folder with config.json, model.safetensors, tokenizer.json")
    parser.add_argument("--fixtures", type=Path, default=ROOT / "tests" / "fixtures" / "minilm")
    args = parser.parse_args()

    if not (args.model / "model.safetensors").is_file():
        print(f"error: no model in {args.model}; run tools/fetch_minilm.sh first", file=sys.stderr)
        return 1

    torch.set_num_threads(1)
    sentences = [
        line.rstrip("\n")
        for line in (args.fixtures / "sentences.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]

    tok = AutoTokenizer.from_pretrained(str(args.model))
    model, info = AutoModel.from_pretrained(
        str(args.model), dtype=torch.float32, attn_implementation="eager",
        output_loading_info=True,
    )
    assert not info["missing_keys"], info["missing_keys"]
    model.eval()

    enc = tok(sentences, padding=True, truncation=True, max_length=MAX_LENGTH,
              return_tensors="pt")

    # The Rust side tokenizes with the `tokenizers` crate straight from
    # tokenizer.json; make sure that gives the same ids as transformers.
    raw = Tokenizer.from_file(str(args.model / "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(MAX_LENGTH)
    for i, s in enumerate(sentences):
        n = int(enc["attention_mask"][i].sum())
        assert enc["input_ids"][i, :n].tolist() == raw.encode(s).ids, s

    with torch.no_grad():
        out = model(**enc, output_hidden_states=True, return_dict=True)

    mask = enc["attention_mask"].unsqueeze(-1).to(torch.float32)
    last = out.last_hidden_state
    mean_last = (last * mask).sum(1) / mask.sum(1)
    cls_layer3 = out.hidden_states[3][:, 0]

    mean_last = mean_last.to(torch.float32).numpy()
    cls_layer3 = cls_layer3.to(torch.float32).contiguous().numpy()
    assert mean_last.shape == (len(sentences), model.config.hidden_size)
    assert np.isfinite(mean_last).all() and np.isfinite(cls_layer3).all()

    np.save(args.fixtures / "expected_mean_last.npy", np.ascontiguousarray(mean_last, dtype=np.float32))
    np.save(args.fixtures / "expected_cls_layer3.npy", np.ascontiguousarray(cls_layer3, dtype=np.float32))
    lengths = enc["attention_mask"].sum(1).tolist()
    print(f"{len(sentences)} sentences, token lengths {lengths}")
    for name in ("sentences.txt", "expected_mean_last.npy", "expected_cls_layer3.npy"):
        p = args.fixtures / name
        print(f"{p.stat().st_size:>9}  {os.path.relpath(p, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
