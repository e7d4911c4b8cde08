"""The model and sentence pairs of the aligner benchmarks (tools/bench_align_compare.sh,
tools/bench_align_train_compare.sh): random weights in mBERT's encoder shape (768 hidden, 12
layers, 12 heads, FFN 3072) with the tiny BERT fixture's vocabulary, so xlt and awesome-align
tokenize alike, and N pairs of 15-30 random words a side.

Usage: python tools/make_bench_align_model.py WORK N encoder|mlm
  encoder: a BertModel (with its pooler), tensors named bert.*, for alignment;
  mlm:     a BertForMaskedLM (with its MLM head, as pretrained checkpoints ship it), for training.
Writes WORK/model/ (config.json, model.safetensors, pytorch_model.bin, tokenizer.json, vocab.txt)
and WORK/pairs.txt. Run from the repository root.
"""
import json, os, random, shutil, sys
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertForMaskedLM, BertModel

work, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fix = "tests/fixtures/tiny-bert"
tok = json.load(open(f"{fix}/tokenizer.json", encoding="utf-8"))
vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
cfg = BertConfig(vocab_size=len(vocab), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512)
torch.manual_seed(0)
d = os.path.join(work, "model")
os.makedirs(d)
cfg.save_pretrained(d)
if kind == "encoder":
    model = BertModel(cfg, add_pooling_layer=True).eval()
    state = {f"bert.{k}": v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, os.path.join(d, "pytorch_model.bin"))
elif kind == "mlm":
    model = BertForMaskedLM(cfg).eval()
    # The decoder is tied to the word embeddings (and its bias to cls.predictions.bias): saved once.
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items() if not k.startswith("cls.predictions.decoder.")}
    torch.save(model.state_dict(), os.path.join(d, "pytorch_model.bin"))
else:
    sys.exit(f"unknown kind {kind!r}: encoder or mlm")
save_file(state, os.path.join(d, "model.safetensors"))
shutil.copy(f"{fix}/tokenizer.json", d)
with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("".join(w + "\n" for w, _ in vocab))
words = [w for w, _ in vocab if w.isalpha() and not w.startswith("##") and len(w) > 2]
random.seed(0)
with open(os.path.join(work, "pairs.txt"), "w", encoding="utf-8") as f:
    for _ in range(n):
        src = [random.choice(words) for _ in range(random.randint(15, 30))]
        tgt = [random.choice(words) for _ in range(random.randint(15, 30))]
        f.write(" ".join(src) + " ||| " + " ".join(tgt) + "\n")
