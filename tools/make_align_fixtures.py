#!/usr/bin/env python3
"""Golden word alignments from the published tools, for tests/align_golden.rs.

Runs SimAlign (PyPI `simalign`: "inter" = argmax, "itermax") on the tiny random-weight XLM-R
and BERT fixtures, and awesome-align (PyPI `awesome-align`, its own BERT implementation and
command line; BERT only, as the tool) on the tiny BERT, at layers 1 and 2, over
tests/fixtures/align/pairs.txt, and writes one Pharaoh file per (tool, model, layer, method)
into tests/fixtures/align/, links sorted (awesome-align writes them in set order). A line
that is not a pair (the tools' rule: exactly one " ||| " and two non-blank sides) gets an
empty line from both tools' drivers here, as awesome-align's does.

Needs torch, transformers, simalign and awesome-align (`pip install torch transformers
simalign; pip install --no-deps awesome-align`). Run from the repository root:
    python tools/make_align_fixtures.py [simalign] [awesome]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import tokenizers
import torch
from safetensors.torch import load_file
from simalign import SentenceAligner

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIX, "align")
LAYERS = (1, 2)


def pairs():
    with open(os.path.join(OUT, "pairs.txt"), encoding="utf-8") as f:
        for line in f.read().split("\n")[:-1]:
            parts = line.split(" ||| ")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                yield None
            else:
                yield parts[0].split(), parts[1].split()


def write(name, rows):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        for links in rows:
            f.write(" ".join(f"{i}-{j}" for i, j in sorted(set(links))) + "\n")
    print("wrote", name)


def simalign(model):
    for layer in LAYERS:
        aligner = SentenceAligner(model=os.path.join(FIX, model), token_type="bpe", matching_methods="ai",
                                  device="cpu", layer=layer)
        # transformers 5 builds XLMRobertaTokenizer without the normaliser of tokenizer.json
        # (NFKC: the ligature ﬁ becomes <unk> instead of f i); the contract is the file's whole
        # pipeline, so the file's normaliser is put back.
        backend = aligner.embed_loader.tokenizer.backend_tokenizer
        backend.normalizer = tokenizers.Tokenizer.from_file(os.path.join(FIX, model, "tokenizer.json")).normalizer
        out = {"inter": [], "itermax": []}
        for p in pairs():
            res = aligner.get_word_aligns(p[0], p[1]) if p else {"inter": [], "itermax": []}
            for k in out:
                out[k].append(res[k])
        write(f"simalign-{model}-L{layer}-argmax.txt", out["inter"])
        write(f"simalign-{model}-L{layer}-itermax.txt", out["itermax"])


def awesome(model):
    """awesome-align's own command line on a copy of the model in the layout it loads
    (vocab.txt, pytorch_model.bin, config.json)."""
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(FIX, model)
        shutil.copy(os.path.join(src, "config.json"), d)
        tok = json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))
        vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
        with open(os.path.join(d, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(w + "\n" for w, _ in vocab))
        torch.save(load_file(os.path.join(src, "model.safetensors")), os.path.join(d, "pytorch_model.bin"))
        # awesome-align 0.1.7 feeds the id -1 of a skipped line to the embedding and fails:
        # only the pairs go to it, and the other lines get their empty line back here.
        ok = [p is not None for p in pairs()]
        lines = open(os.path.join(OUT, "pairs.txt"), encoding="utf-8").read().split("\n")[:-1]
        data = os.path.join(d, "pairs.txt")
        with open(data, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line, good in zip(lines, ok) if good))
        for layer in LAYERS:
            out = os.path.join(d, f"out{layer}.txt")
            subprocess.run([sys.executable, "-m", "awesome_align.run_align", "--output_file", out,
                            "--model_name_or_path", d, "--data_file", data,
                            "--extraction", "softmax", "--softmax_threshold", "0.001", "--align_layer",
                            str(layer), "--batch_size", "4", "--num_workers", "0"], check=True)
            with open(out, encoding="utf-8") as f:
                got = iter(f.read().split("\n")[:-1])
            rows = [[tuple(map(int, t.split("-"))) for t in next(got).split()] if good else [] for good in ok]
            write(f"awesome-{model}-L{layer}-softmax.txt", rows)


if __name__ == "__main__":
    torch.manual_seed(0)
    parts = sys.argv[1:] or ["simalign", "awesome"]  # which tools to run
    if "simalign" in parts:
        simalign("tiny-xlmr")
        simalign("tiny-bert")
    if "awesome" in parts:
        awesome("tiny-bert")
