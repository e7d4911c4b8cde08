"""Write synthetic English sentences for the embedding benchmark.

Each sentence has 5 to 40 words, built from small word lists with a fixed
random seed, one sentence per line.

Usage:  python tools/make_sentences.py [--n 3000] [--out FILE] [--seed 0]
"""

import argparse
import random
import sys

DETERMINERS = ["the", "a", "this", "that", "every", "one", "some", "our", "my", "their"]
ADJECTIVES = [
    "small", "large", "quiet", "bright", "old", "new", "curious", "careful", "green",
    "heavy", "distant", "simple", "strange", "friendly", "busy", "cold", "warm",
    "ancient", "modern", "tired", "happy", "narrow", "wooden", "silver",
]
NOUNS = [
    "cat", "teacher", "river", "city", "engineer", "garden", "letter", "window",
    "student", "market", "bridge", "doctor", "musician", "mountain", "library",
    "computer", "farmer", "train", "storm", "company", "kitchen", "painting",
    "village", "report", "customer", "island", "museum", "question", "machine",
    "forest", "child", "neighbour", "station", "recipe", "planet", "harbour",
]
VERBS = [
    "sees", "finds", "builds", "paints", "carries", "watches", "opens", "follows",
    "remembers", "explains", "studies", "describes", "repairs", "visits", "sells",
    "measures", "prepares", "discovers", "ignores", "answers", "protects", "moves",
]
ADVERBS = [
    "slowly", "quickly", "carefully", "quietly", "often", "rarely", "suddenly",
    "happily", "again", "together", "yesterday", "today",
]
PREPOSITIONS = ["near", "behind", "under", "across", "inside", "beside", "without", "after"]
CONNECTORS = ["and", "but", "because", "while", "although", "so", "when"]


def noun_phrase(rng: random.Random) -> list:
    words = [rng.choice(DETERMINERS)]
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS))
    return words


def clause(rng: random.Random) -> list:
    words = noun_phrase(rng)
    if rng.random() < 0.3:
        words.append(rng.choice(ADVERBS))
    words.append(rng.choice(VERBS))
    words += noun_phrase(rng)
    if rng.random() < 0.5:
        words.append(rng.choice(PREPOSITIONS))
        words += noun_phrase(rng)
    return words


def sentence(rng: random.Random, n_words: int) -> str:
    words = clause(rng)
    while len(words) < n_words:
        words.append(rng.choice(CONNECTORS))
        words += clause(rng)
    words = words[:n_words]
    if words[-1] in CONNECTORS or words[-1] in PREPOSITIONS or words[-1] in DETERMINERS:
        words[-1] = rng.choice(NOUNS)
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", ".", ".", "!", "?"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=3000, help="number of sentences")
    p.add_argument("--out", default="-", help="output file ('-' for stdout)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-words", type=int, default=5)
    p.add_argument("--max-words", type=int, default=40)
    args = p.parse_args(argv)
    if not 1 <= args.min_words <= args.max_words:
        p.error("need 1 <= --min-words <= --max-words")

    rng = random.Random(args.seed)
    lines = [sentence(rng, rng.randint(args.min_words, args.max_words)) for _ in range(args.n)]
    text = "\n".join(lines) + ("\n" if lines else "")
    if args.out == "-":
        sys.stdout.write(text)
    else:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
