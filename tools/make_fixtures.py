"""Generate the tiny XLM-R and BERT test fixtures under tests/fixtures/.

Everything is built locally and deterministically (fixed seeds, one thread):

* a synthetic multilingual corpus (English plus accented Latin, Cyrillic and
  CJK) assembled from word lists below;
* a SentencePiece-style Unigram tokenizer (XLM-R layout) and a WordPiece
  tokenizer (BERT layout) learned from that corpus and saved as `tokenizers`
  tokenizer.json files;
* two tiny randomly initialised models (`XLMRobertaForSequenceClassification`
  with an extra pooler, `BertForSequenceClassification`) saved as safetensors;
* golden forward/backward outputs computed by PyTorch/transformers with dropout
  disabled (`golden.safetensors`) and reference tokenizations (`tokens.json`).

Usage:  python tools/make_fixtures.py [--out tests/fixtures]
"""

import argparse
import json
import math
import os
import random
import sys
import unicodedata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import (  # noqa: E402
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)
from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
    XLMRobertaModel,
)
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parent.parent
SEED = 1234
NUM_LABELS = 3
GOLDEN_LABELS = [0, 2, 1]

# ---------------------------------------------------------------------------
# Synthetic corpus
# ---------------------------------------------------------------------------

SUBJECTS = [
    "the cat", "the dog", "a student", "my sister", "the teacher", "our neighbour",
    "the old man", "a young woman", "the children", "the farmer", "the doctor",
    "the engineer", "a small bird", "the musician", "the river", "the city",
    "my friend", "the baker", "the pilot", "the library",
]
VERBS = [
    "reads", "writes", "sees", "likes", "visits", "finds", "builds", "paints",
    "carries", "watches", "opens", "closes", "follows", "remembers", "explains",
    "studies", "cooks", "sells", "buys", "plays",
]
OBJECTS = [
    "a book", "the letter", "a red apple", "the window", "an old map",
    "the green door", "a long story", "the new bridge", "a cup of tea",
    "the morning paper", "a quiet song", "the blue car", "some bread",
    "the garden", "a strange picture", "the mountain", "the school",
    "a warm coat", "the big market", "a simple question",
]
PLACES = [
    "in the park", "near the station", "at home", "by the sea", "in the morning",
    "after dinner", "on monday", "under the tree", "in the kitchen",
    "before the rain", "across the street", "during the summer",
]
ACCENTED = [
    "café", "naïve", "façade", "résumé", "crème brûlée", "Zürich", "München",
    "señor", "mañana", "über", "déjà vu", "jalapeño", "Ångström", "São Paulo",
    "Kraków", "fiancée", "élève", "Straße", "coöperate", "piñata",
]
FRENCH = [
    "Le café est très bon.", "Où est la bibliothèque?", "Il fait beau à Genève.",
    "Les élèves étudient la géographie.", "Je préfère le thé à la crème.",
    "La fenêtre de la maison est ouverte.", "Nous allons à la plage demain.",
]
GERMAN_SPANISH = [
    "Die Straße ist lang und grün.", "Der Bäcker öffnet früh am Morgen.",
    "Mañana vamos a la montaña.", "El niño come una manzana roja.",
    "Über den Fluss führt eine Brücke.", "La canción es muy bonita.",
]
CYRILLIC = [
    "Привет, мир!", "Москва большой город.", "Я читаю книгу.",
    "Библиотека рядом с рекой.", "Сегодня хорошая погода.",
    "Студенты изучают историю.", "Мой друг живёт в Казани.",
]
CJK = [
    "東京は日本の首都です。", "我喜欢学习中文。", "今天天气很好。",
    "北京有很多大学。", "私は本を読みます。", "你好，世界！", "山の上に雪があります。",
]
CONNECTORS = ["and", "but", "because", "while", "so", "although"]


def build_corpus(seed: int, n: int = 420) -> list:
    """Return `n` short synthetic sentences (deterministic for a given seed)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.55:
            s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            if rng.random() < 0.6:
                s += f" {rng.choice(PLACES)}"
            if rng.random() < 0.3:
                s += (
                    f" {rng.choice(CONNECTORS)} {rng.choice(SUBJECTS)}"
                    f" {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
                )
            s = s[0].upper() + s[1:] + rng.choice([".", ".", ".", "!", "?"])
        elif kind < 0.70:
            s = (
                f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} "
                f"the {rng.choice(ACCENTED)} {rng.choice(PLACES)}, "
                f"says {rng.choice(ACCENTED)}."
            )
        elif kind < 0.82:
            s = rng.choice(FRENCH + GERMAN_SPANISH)
        elif kind < 0.91:
            s = rng.choice(CYRILLIC)
            if rng.random() < 0.4:
                s += " " + rng.choice(CYRILLIC)
        else:
            s = rng.choice(CJK)
            if rng.random() < 0.3:
                s = f"{rng.choice(SUBJECTS).capitalize()} said: {s}"
        if i % 37 == 0:
            s += f" It costs {rng.randint(2, 999)} euros, about {rng.randint(1, 99)}%."
        out.append(s)
    return out


# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------

XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# The trainers shipped with `tokenizers` iterate over hash maps and sum floats in
# parallel, so their output (token order, Unigram scores) changes from run to run.
# The fixtures must be reproducible byte for byte, so the vocabularies are learned
# here with two small deterministic trainers and then loaded into the regular
# `tokenizers` models, normalizers, pre-tokenizers and post-processors.


def word_counts(tok: Tokenizer, corpus: list) -> list:
    """Normalise and pre-tokenise the corpus with `tok`; return sorted (word, count)."""
    counts = {}
    for line in corpus:
        text = tok.normalizer.normalize_str(line) if tok.normalizer is not None else line
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(text):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts.items())


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def _script(c: str) -> str:
    """Coarse script class used to stop pieces from spanning scripts."""
    if c.isdigit():
        return "digit"
    if not c.isalpha():
        return "other:" + c  # punctuation and symbols stand alone
    name = unicodedata.name(c, "UNKNOWN")
    head = name.split()[0]
    if head in ("CJK", "HIRAGANA", "KATAKANA"):
        return "cjk"
    return head


def _valid_piece(p: str) -> bool:
    body = p[1:] if p.startswith("▁") else p
    if "▁" in body:
        return False
    if len(body) <= 1:
        return True
    first = _script(body[0])
    return not first.startswith("other:") and all(_script(c) == first for c in body)


def _viterbi_cost(text: str, logp: dict, max_piece_len: int, skip: str = None) -> float:
    """Best log-probability segmentation of `text` (optionally without piece `skip`)."""
    best = [-math.inf] * (len(text) + 1)
    best[0] = 0.0
    for j in range(1, len(text) + 1):
        for i in range(max(0, j - max_piece_len), j):
            piece = text[i:j]
            if piece == skip or best[i] == -math.inf:
                continue
            lp = logp.get(piece)
            if lp is not None and best[i] + lp > best[j]:
                best[j] = best[i] + lp
    return best[-1]


def train_unigram_vocab(words: list, vocab_size: int, n_special: int,
                        max_piece_len: int = 8, shrink: float = 0.75,
                        em_iters: int = 2, max_seeds: int = 4000) -> list:
    """Unigram language-model vocabulary learned with EM and pruning.

    Follows the SentencePiece recipe on a small scale: seed with frequent
    substrings (not crossing scripts or word boundaries), re-estimate piece
    probabilities with EM (forward-backward over each word's segmentation
    lattice), and repeatedly drop the pieces whose removal costs the least
    likelihood. Single characters are always kept. Returns [(piece, log_prob)].
    """
    chars = sorted({c for w, _ in words for c in w})
    freq = {}
    for w, n in words:
        for i in range(len(w)):
            for j in range(i + 2, min(len(w), i + max_piece_len) + 1):
                if _valid_piece(w[i:j]):
                    freq[w[i:j]] = freq.get(w[i:j], 0) + n
    seeds = sorted((p for p, f in freq.items() if f >= 2), key=lambda p: (-freq[p] * len(p), p))
    seeds = seeds[:max_seeds]
    char_freq = {c: 0 for c in chars}
    for w, n in words:
        for c in w:
            char_freq[c] += n
    weight = {p: freq[p] * len(p) for p in seeds}
    weight.update(char_freq)
    total = sum(weight[p] for p in sorted(weight))
    logp = {p: math.log(weight[p] / total) for p in sorted(weight)}

    def expected_counts(logp: dict) -> dict:
        counts = {p: 0.0 for p in logp}
        for w, n in words:
            m = len(w)
            alpha = [-math.inf] * (m + 1)
            alpha[0] = 0.0
            for j in range(1, m + 1):
                acc = -math.inf
                for i in range(max(0, j - max_piece_len), j):
                    lp = logp.get(w[i:j])
                    if lp is not None and alpha[i] != -math.inf:
                        acc = _logsumexp(acc, alpha[i] + lp)
                alpha[j] = acc
            beta = [-math.inf] * (m + 1)
            beta[m] = 0.0
            for i in range(m - 1, -1, -1):
                acc = -math.inf
                for j in range(i + 1, min(m, i + max_piece_len) + 1):
                    lp = logp.get(w[i:j])
                    if lp is not None and beta[j] != -math.inf:
                        acc = _logsumexp(acc, lp + beta[j])
                beta[i] = acc
            z = alpha[m]
            for i in range(m):
                if alpha[i] == -math.inf:
                    continue
                for j in range(i + 1, min(m, i + max_piece_len) + 1):
                    lp = logp.get(w[i:j])
                    if lp is None or beta[j] == -math.inf:
                        continue
                    counts[w[i:j]] += n * math.exp(alpha[i] + lp + beta[j] - z)
        # Round so that rankings do not depend on the last bits of a float sum.
        return {p: round(c, 6) for p, c in counts.items()}

    def m_step(counts: dict) -> dict:
        kept = {p: c for p, c in counts.items() if c > 0 or len(p) == 1}
        total = sum(kept[p] for p in sorted(kept)) + 0.5 * len(kept)
        return {p: round(math.log((kept[p] + 0.5) / total), 9) for p in sorted(kept)}, kept

    target = vocab_size - n_special
    while True:
        for _ in range(em_iters):
            logp, counts = m_step(expected_counts(logp))
        if len(logp) <= target:
            break
        keep_n = max(target, int(len(logp) * shrink))
        # Loss of removing a piece: its expected count times the drop in
        # log-probability when it has to be spelled with the remaining pieces.
        loss = {}
        for p in logp:
            if len(p) == 1:
                continue
            alt = _viterbi_cost(p, logp, max_piece_len, skip=p)
            loss[p] = round(counts[p] * (logp[p] - alt), 6)
        multi = sorted(loss, key=lambda p: (-loss[p], p))
        keep = set(chars) | set(multi[: max(0, keep_n - len(chars))])
        logp = {p: logp[p] for p in sorted(keep)}
    logp, _ = m_step(expected_counts(logp))
    return sorted(((p, round(lp, 6)) for p, lp in logp.items()), key=lambda x: (-x[1], x[0]))


def train_wordpiece_vocab(words: list, vocab_size: int, n_special: int,
                          min_frequency: int = 2, prefix: str = "##") -> list:
    """WordPiece vocabulary learned by BPE-style merges (ties broken by text)."""
    splits = {w: [w[0]] + [prefix + c for c in w[1:]] for w, _ in words}
    vocab = sorted({s for parts in splits.values() for s in parts},
                   key=lambda s: (s.startswith(prefix), s))
    seen = set(vocab)
    while n_special + len(vocab) < vocab_size:
        pairs = {}
        for w, n in words:
            parts = splits[w]
            for a, b in zip(parts, parts[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + n
        if not pairs:
            break
        (a, b), count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        if count < min_frequency:
            break
        merged = a + b[len(prefix):]
        for w, _ in words:
            parts = splits[w]
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(merged)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            splits[w] = out
        if merged not in seen:
            seen.add(merged)
            vocab.append(merged)
    return vocab


def train_xlmr_tokenizer(corpus: list, vocab_size: int = 400) -> Tokenizer:
    """SentencePiece-style Unigram tokenizer with the XLM-R special-token layout.

    Same pipeline as `tokenizers.implementations.SentencePieceUnigramTokenizer`
    (Nmt + NFKC + collapse spaces, Metaspace "always"), plus RobertaProcessing.
    """
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.Nmt(), normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    pieces = train_unigram_vocab(word_counts(tok, corpus), vocab_size, len(XLMR_SPECIALS))
    vocab = [(t, 0.0) for t in XLMR_SPECIALS] + pieces
    tok.model = models.Unigram(vocab, unk_id=XLMR_SPECIALS.index("<unk>"), byte_fallback=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.add_special_tokens(
        [
            AddedToken("<s>", special=True, normalized=False),
            AddedToken("<pad>", special=True, normalized=False),
            AddedToken("</s>", special=True, normalized=False),
            AddedToken("<unk>", special=True, normalized=False),
            AddedToken("<mask>", special=True, normalized=False, lstrip=True),
        ]
    )
    for i, name in enumerate(XLMR_SPECIALS):
        assert tok.token_to_id(name) == i, (name, tok.token_to_id(name))
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")),
        ("<s>", tok.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=True,
    )
    return tok


def train_bert_tokenizer(corpus: list, vocab_size: int = 400) -> Tokenizer:
    """Lower-casing WordPiece tokenizer with the BERT special tokens.

    Same pipeline as `tokenizers.implementations.BertWordPieceTokenizer`, with a
    TemplateProcessing post-processor.
    """
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    pieces = train_wordpiece_vocab(word_counts(tok, corpus), vocab_size, len(BERT_SPECIALS))
    vocab = {t: i for i, t in enumerate(BERT_SPECIALS + pieces)}
    tok.model = models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100)
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in BERT_SPECIALS]
    )
    for i, name in enumerate(BERT_SPECIALS):
        assert tok.token_to_id(name) == i, (name, tok.token_to_id(name))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tok


def hf_tokenizer(path: Path, kind: str) -> PreTrainedTokenizerFast:
    if kind == "xlmr":
        specials = dict(
            bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>",
            cls_token="<s>", pad_token="<pad>", mask_token="<mask>",
        )
    else:
        specials = dict(
            unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
            cls_token="[CLS]", mask_token="[MASK]",
        )
    return PreTrainedTokenizerFast(tokenizer_file=str(path), padding_side="right", **specials)


# ---------------------------------------------------------------------------
# Tokenization reference cases
# ---------------------------------------------------------------------------

LONG_A = (
    "The old farmer carries a warm coat across the street because the morning is cold, "
    "and the children watch the small bird near the station while the baker sells bread."
)
LONG_B = (
    "Le café de Zürich est très célèbre, and my sister visits the big market in "
    "München every summer with her fiancée from Kraków."
)
SHORT_B = "Yes."
LONG_SINGLE = (
    "During the summer the musician plays a quiet song under the tree, the teacher explains "
    "a simple question to the students, and the pilot remembers an old map of São Paulo, "
    "Москва and 東京 before the rain starts again."
)


def text_cases(mask: str) -> list:
    """(a, b, max_length, expectation) tuples; expectation is checked on the result."""
    return [
        ("Hello world!", None, None, None),
        ("The quick brown fox jumps over the lazy dog.", None, None, None),
        ("Le café de Zürich est très célèbre, n'est-ce pas?", None, None, None),
        ("Привет, как дела?", None, None, None),
        ("東京は日本の首都です。", None, None, None),
        ("Mixed: naïve façade, Москва and 北京 in one line.", None, None, None),
        ("  Extra   spaces\tand\ttabs  ", None, None, None),
        ("Unseen symbols like 🍕 and ☃ become unknown.", None, None, None),
        (f"Paris is the capital of {mask}.", None, None, None),
        ("", None, None, None),
        ("How old are you?", "I am six years old.", None, None),
        ("Où est la bibliothèque?", "Библиотека рядом с рекой.", None, None),
        ("我喜欢学习中文。", "The students study Chinese.", None, None),
        ("A short sentence.", None, 32, "no_cut"),
        ("Is it raining?", "Yes, it is.", 40, "no_cut"),
        (LONG_SINGLE, None, 16, "single_cut"),
        (LONG_SINGLE, None, 7, "single_cut"),
        (LONG_A, LONG_B, 24, "both_cut"),
        (LONG_A, SHORT_B, 24, "first_only_cut"),
        (SHORT_B, LONG_B, 20, "second_only_cut"),
        (LONG_A, LONG_B, 31, "both_cut"),
    ]


WORD_CASES = [
    ["Hello", "world", "!"],
    ["The", "naïve", "student", "visited", "Zürich", "."],
    ["Привет", "мир"],
    ["東京", "は", "大きい", "です"],
    ["don't", "stop", "believing!"],
    ["état-major", "crème", "brûlée", "🍕"],
    ["a"],
]


def raw_encode(raw: Tokenizer, a, b=None, max_length=None, pretok=False):
    raw = Tokenizer.from_str(raw.to_str())
    raw.no_padding()
    if max_length is None:
        raw.no_truncation()
    else:
        raw.enable_truncation(max_length, strategy="longest_first")
    return raw.encode(a, b, is_pretokenized=pretok, add_special_tokens=True)


def make_token_cases(hf, raw: Tokenizer, mask: str) -> list:
    cases = []
    for a, b, max_length, expect in text_cases(mask):
        kwargs = dict(return_token_type_ids=True, return_attention_mask=True)
        if max_length is not None:
            kwargs.update(truncation="longest_first", max_length=max_length)
        enc = hf(a, b, **kwargs) if b is not None else hf(a, **kwargs)
        ids = list(enc["input_ids"])
        ref = raw_encode(raw, a, b, max_length)
        assert ids == ref.ids, (a, b, ids, ref.ids)
        assert list(enc["token_type_ids"]) == ref.type_ids
        assert list(enc["attention_mask"]) == ref.attention_mask
        if expect is not None:
            len_a = len(hf(a, add_special_tokens=False)["input_ids"])
            len_b = len(hf(b, add_special_tokens=False)["input_ids"]) if b else 0
            n_special = hf.num_special_tokens_to_add(pair=b is not None)
            seq_ids = enc.sequence_ids()
            kept_a = sum(1 for s in seq_ids if s == 0)
            kept_b = sum(1 for s in seq_ids if s == 1)
            assert len(ids) <= max_length
            cut_a, cut_b = kept_a < len_a, kept_b < len_b
            observed = {
                (False, False): "no_cut",
                (True, False): "first_only_cut" if b else "single_cut",
                (False, True): "second_only_cut",
                (True, True): "both_cut",
            }[(cut_a, cut_b)]
            assert observed == expect, (a, b, max_length, observed, expect, len_a, len_b, n_special)
        cases.append(
            {
                "a": a,
                "b": b,
                "max_length": max_length,
                "input_ids": ids,
                "token_type_ids": list(enc["token_type_ids"]),
                "attention_mask": list(enc["attention_mask"]),
            }
        )
    for words in WORD_CASES:
        enc = hf(words, is_split_into_words=True)
        ids = list(enc["input_ids"])
        word_ids = enc.word_ids()
        ref = raw_encode(raw, words, pretok=True)
        assert ids == ref.ids, (words, ids, ref.ids)
        assert word_ids == ref.word_ids, (words, word_ids, ref.word_ids)
        cases.append({"words": words, "input_ids": ids, "word_ids": word_ids})
    return cases


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

GOLDEN_PAIRS = [
    ("The cat reads.", "Yes!"),
    ("My sister visits the café in Zürich.", "The teacher explains a simple question."),
    (
        "Привет, мир! The old man carries a warm coat.",
        "東京は日本の首都です。 The children watch the blue car.",
    ),
]


@torch.no_grad()
def perturb(model: torch.nn.Module, gen: torch.Generator, scale: float = 0.1) -> None:
    """Move LayerNorm parameters away from 1/0 and give every bias a random value."""
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.weight.add_(scale * torch.randn(module.weight.shape, generator=gen))
            module.bias.add_(scale * torch.randn(module.bias.shape, generator=gen))
        elif isinstance(module, torch.nn.Linear) and module.bias is not None:
            module.bias.add_(scale * torch.randn(module.bias.shape, generator=gen))


# initializer_range is raised from the usual 0.02 so that attention is far from
# uniform and GELU/tanh work in their non-linear range in such a small model.


def build_xlmr(vocab_size: int):
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        layer_norm_eps=1e-5,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        initializer_range=0.2,
        num_labels=NUM_LABELS,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    config._attn_implementation = "eager"
    torch.manual_seed(SEED)
    model = XLMRobertaForSequenceClassification(config)
    # The classification model has no pooler; swap in a base model that has one,
    # carrying over the encoder weights, so the checkpoint holds both heads.
    base = XLMRobertaModel(config, add_pooling_layer=True)
    missing, unexpected = base.load_state_dict(model.roberta.state_dict(), strict=False)
    assert not unexpected, unexpected
    assert sorted(missing) == ["pooler.dense.bias", "pooler.dense.weight"], missing
    model.roberta = base
    gen = torch.Generator().manual_seed(SEED + 1)
    perturb(model, gen)
    return config, model


def build_bert(vocab_size: int):
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        type_vocab_size=2,
        pad_token_id=0,
        layer_norm_eps=1e-12,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        initializer_range=0.2,
        num_labels=NUM_LABELS,
        architectures=["BertForSequenceClassification"],
    )
    config._attn_implementation = "eager"
    torch.manual_seed(SEED + 10)
    model = BertForSequenceClassification(config)
    gen = torch.Generator().manual_seed(SEED + 11)
    perturb(model, gen)
    return config, model


def golden(kind: str, model, hf) -> dict:
    a = [p[0] for p in GOLDEN_PAIRS]
    b = [p[1] for p in GOLDEN_PAIRS]
    enc = hf(a, b, padding=True, return_tensors="pt", return_token_type_ids=True)
    input_ids = enc["input_ids"].to(torch.int64)
    attention_mask = enc["attention_mask"].to(torch.int64)
    token_type_ids = enc["token_type_ids"].to(torch.int64)
    labels = torch.tensor(GOLDEN_LABELS, dtype=torch.int64)
    lengths = attention_mask.sum(1).tolist()
    assert len(set(lengths)) == len(lengths), lengths
    assert input_ids.shape[1] <= 64, input_ids.shape

    model.eval()  # disables dropout for both the forward outputs and the gradients
    model.zero_grad(set_to_none=True)
    base = model.roberta if kind == "xlmr" else model.bert
    out = base(
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=token_type_ids,
        output_hidden_states=True,
        return_dict=True,
    )
    pooled = out.pooler_output
    if kind == "xlmr":
        logits = model.classifier(out.last_hidden_state)
    else:
        logits = model.classifier(model.dropout(pooled))
    loss = F.cross_entropy(logits, labels)
    assert torch.isfinite(loss), loss
    loss.backward()

    # Cross-check against the stock forward of the classification model.
    with torch.no_grad():
        ref = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            labels=labels,
            return_dict=True,
        )
    assert torch.allclose(ref.logits, logits, atol=1e-6), (ref.logits, logits)
    assert torch.allclose(ref.loss, loss, atol=1e-6), (ref.loss, loss)

    t = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "token_type_ids": token_type_ids,
        "labels": labels,
    }
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    for i, h in enumerate(out.hidden_states):
        t[f"hidden_states.{i}"] = h.detach()
    t["pooled"] = pooled.detach()
    t["logits"] = logits.detach()
    t["loss"] = loss.detach().reshape(1)
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        t[f"grad.{name}"] = p.grad.detach()
    out_t = {}
    for k, v in t.items():
        if v.is_floating_point():
            v = v.to(torch.float32)
        out_t[k] = v.contiguous().clone()
    return out_t


def state_dict_for_saving(model) -> dict:
    # Parameters only: drops non-persistent buffers such as position_ids/token_type_ids.
    sd = {}
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32, name
        sd[name] = p.detach().contiguous().clone()
    return sd


def write_cases_json(path: Path, cases: list) -> None:
    """Write a JSON list with one case per line (compact but diff-friendly)."""
    lines = [json.dumps(c, ensure_ascii=False, separators=(", ", ": ")) for c in cases]
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(lines) + "\n]\n")


def make_model_fixture(kind: str, out_dir: Path, corpus: list) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    tok_path = out_dir / "tokenizer.json"
    if kind == "xlmr":
        raw = train_xlmr_tokenizer(corpus)
    else:
        raw = train_bert_tokenizer(corpus)
    raw.save(str(tok_path), pretty=True)
    raw = Tokenizer.from_file(str(tok_path))
    hf = hf_tokenizer(tok_path, kind)
    vocab_size = raw.get_vocab_size(with_added_tokens=True)

    if kind == "xlmr":
        config, model = build_xlmr(vocab_size)
        mask = "<mask>"
    else:
        config, model = build_bert(vocab_size)
        mask = "[MASK]"

    config.save_pretrained(str(out_dir))
    for name, tensors in (
        ("model.safetensors", state_dict_for_saving(model)),
        ("golden.safetensors", golden(kind, model, hf)),
    ):
        save_file(tensors, str(out_dir / name))
        os.chmod(out_dir / name, 0o644)  # save_file creates files private to the user
    write_cases_json(out_dir / "tokens.json", make_token_cases(hf, raw, mask))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures"))
    args = parser.parse_args()
    out = Path(args.out)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    corpus = build_corpus(SEED)

    make_model_fixture("xlmr", out / "tiny-xlmr", corpus)
    make_model_fixture("bert", out / "tiny-bert", corpus)

    total = 0
    for sub in ("tiny-xlmr", "tiny-bert"):
        for p in sorted((out / sub).iterdir()):
            size = p.stat().st_size
            total += size
            print(f"{size:>9}  {os.path.relpath(p, ROOT)}")
    print(f"{total:>9}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
