"""Golden outputs of the task heads that transformers has in the same form as xlt.

For the tiny XLM-R and BERT fixtures (tests/fixtures/tiny-{xlmr,bert}, made by
make_fixtures.py), builds *ForTokenClassification, *ForQuestionAnswering and
*ForMaskedLM on the same encoder weights with seeded random head weights, runs the
padded golden batch with dropout off, and writes tests/fixtures/<model>/heads.safetensors:

* `<head>.w.<name>`: the head's own weights (HF names);
* `<head>.input_ids`, `<head>.labels` / `<head>.start_positions` / `<head>.end_positions`;
* `<head>.logits` (MLM: only the masked rows, in flat-index order), `<head>.loss`;
* `<head>.grad.<name>` for the head's weights and for the word-embedding table (which
  the MLM decoder is tied to, and which every head's gradient reaches through the encoder).

Usage: python tools/make_head_fixtures.py [--fixtures tests/fixtures]
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
import transformers  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
torch.set_num_threads(1)

FAMILIES = {
    "tiny-xlmr": ("XLMRoberta", "roberta", 4),  # (class prefix, base attribute, mask id)
    "tiny-bert": ("Bert", "bert", 4),
}
NUM_TAGS = 5


def head_params(model, base: str) -> dict:
    """The parameters that are not the encoder's."""
    return {n: p for n, p in model.named_parameters() if not n.startswith(base + ".")}


def run(kind: str, fixtures: Path) -> dict:
    prefix, base, mask_id = FAMILIES[kind]
    d = fixtures / kind
    g = load_file(str(d / "golden.safetensors"))
    ids, attn, types = g["input_ids"], g["attention_mask"], g["token_type_ids"]
    B, T = ids.shape
    out = {}
    gen = torch.Generator().manual_seed(1234)

    def build(cls_name, **kw):
        m = getattr(transformers, prefix + cls_name).from_pretrained(str(d), ignore_mismatched_sizes=True, **kw)
        m.config._attn_implementation = "eager"
        with torch.no_grad():
            for n, p in head_params(m, base).items():
                if "word_embeddings" in n or n.endswith("decoder.weight"):
                    continue  # the MLM decoder weight is the (tied) word-embedding table
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if "LayerNorm.weight" in n or "layer_norm.weight" in n else 0.0))
        m.eval()
        return m

    def record(tag, m, loss, logits, inputs, extra):
        loss.backward()
        out[f"{tag}.loss"] = loss.detach().reshape(1)
        out[f"{tag}.logits"] = logits.detach().contiguous()
        out[f"{tag}.input_ids"] = inputs.clone()
        for k, v in extra.items():
            out[f"{tag}.{k}"] = v.clone()
        for n, p in head_params(m, base).items():
            if n.endswith("decoder.weight") or n.endswith("decoder.bias"):
                continue  # tied to the word embeddings / the head bias
            out[f"{tag}.w.{n}"] = p.detach().clone().contiguous()
            out[f"{tag}.grad.{n}"] = p.grad.detach().clone().contiguous()
        wte = getattr(m, base).embeddings.word_embeddings.weight
        out[f"{tag}.grad.embeddings.word_embeddings.weight"] = wte.grad.detach().clone().contiguous()

    # Token classification: label the non-special real tokens, ignore specials, pads and every third token.
    m = build("ForTokenClassification", num_labels=NUM_TAGS)
    labels = torch.randint(0, NUM_TAGS, (B, T), generator=gen)
    keep = attn.bool() & (torch.arange(T)[None, :] % 3 != 0)
    labels = torch.where(keep, labels, torch.full_like(labels, -100))
    o = m(input_ids=ids, attention_mask=attn, token_type_ids=types, labels=labels)
    record("tagging", m, o.loss, o.logits, ids, {"labels": labels})

    # Span QA: answers inside the first two sequences; the third's is out of the window (T).
    m = build("ForQuestionAnswering", num_labels=2)
    starts = torch.tensor([2, 5, T], dtype=torch.long)
    ends = torch.tensor([4, 9, T], dtype=torch.long)
    o = m(input_ids=ids, attention_mask=attn, token_type_ids=types, start_positions=starts, end_positions=ends)
    logits = torch.stack([o.start_logits, o.end_logits], dim=-1)
    record("span", m, o.loss, logits, ids, {"start_positions": starts, "end_positions": ends})

    # MLM: mask about a quarter of the real non-special tokens.
    m = build("ForMaskedLM")
    special = (ids == ids[:, :1]) | (torch.arange(T)[None, :] == 0)
    sel = (torch.rand((B, T), generator=gen) < 0.25) & attn.bool() & ~special
    sel[0, 1] = True
    mlm_ids = torch.where(sel, torch.full_like(ids, mask_id), ids)
    mlm_labels = torch.where(sel, ids, torch.full_like(ids, -100))
    o = m(input_ids=mlm_ids, attention_mask=attn, token_type_ids=types, labels=mlm_labels)
    rows = sel.flatten().nonzero().flatten()
    record("mlm", m, o.loss, o.logits.reshape(B * T, -1)[rows], mlm_ids, {"labels": mlm_labels})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", default=str(Path(__file__).resolve().parent.parent / "tests" / "fixtures"))
    args = ap.parse_args()
    for kind in FAMILIES:
        torch.manual_seed(0)
        out = run(kind, Path(args.fixtures))
        path = Path(args.fixtures) / kind / "heads.safetensors"
        save_file(out, str(path))
        print(f"{path}: {path.stat().st_size} bytes, {len(out)} tensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
