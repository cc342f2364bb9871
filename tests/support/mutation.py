"""Random edits of a message, for the tests that prove bad input never crashes the mapper."""

from __future__ import annotations

import random


def mutate(rng: random.Random, text: str, alphabet: str, *, max_edits: int) -> str:
    """``text`` with 1..``max_edits`` random replacements, deletions or insertions."""
    chars = list(text)
    for _ in range(rng.randint(1, max_edits)):
        pos = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            chars[pos] = rng.choice(alphabet)
        elif op < 0.7:
            del chars[pos]
        else:
            chars.insert(pos, rng.choice(alphabet))
    return "".join(chars)
