"""The demo corpus's sentences: a fixed pool generated from a small grammar, split by sentence.

The pool is made from a word list rich in /p b m/ (bilabials are what a lip model must
close), and /f v/, rounded and open vowels, by five templates; it does not depend on any
seed, so the same sentences are held out in every demo build. Each sentence belongs to
exactly one split: `train`, `val`, `test` (unseen sentences spoken by the seen speakers)
or `test_speaker` (unseen sentences spoken by the held-out speaker). Nothing of a held-out
split is ever spoken in training, by any voice.

`held_out_sentences(split)` gives the sentences of a held-out split: tests and examples that
claim to speak unseen content take them from here.
"""

from __future__ import annotations

import numpy as np

POOL_SIZE = 800
POOL_SEED = 2026  # fixed: the pool and its split never change with a build's --seed
SPLIT_SHARES = {"val": 0.1, "test": 0.1, "test_speaker": 0.1}  # the rest is train
HELD_OUT_SPLITS = tuple(SPLIT_SHARES)

_SUBJECTS = ("My mother", "The baker", "Pam", "Bob", "The pilot", "Ben", "The plumber",
             "Mary", "The museum guide", "Our neighbour", "The boy", "Emma", "The captain",
             "Tom", "Grandpa", "The mayor", "Sam", "Molly", "Peter", "The farmer", "Kate",
             "The teacher", "Jim", "My brother", "Maple", "The painter", "Phil", "Amber")
_VERBS = (("packed", "pack"), ("bought", "buy"), ("moved", "move"), ("dropped", "drop"),
          ("painted", "paint"), ("borrowed", "borrow"), ("mended", "mend"),
          ("wrapped", "wrap"), ("pushed", "push"), ("picked up", "pick up"),
          ("brought", "bring"), ("opened", "open"), ("found", "find"), ("cleaned", "clean"),
          ("kept", "keep"), ("washed", "wash"), ("carried", "carry"), ("sold", "sell"),
          ("measured", "measure"), ("stamped", "stamp"), ("polished", "polish"),
          ("hid", "hide"), ("fixed", "fix"), ("swapped", "swap"))
_ADJECTIVES = ("purple", "big", "small", "maple", "bumpy", "empty", "broken", "bright",
               "warm", "plump", "simple", "heavy", "blue", "golden", "old", "shabby", "tiny",
               "brown", "pale", "perfect", "smooth", "velvet", "sturdy", "amber")
_NOUNS = ("blanket", "basket", "map", "bottle", "lamp", "pillow", "bench", "box", "parcel",
          "umbrella", "mirror", "piano", "cup", "button", "ribbon", "pumpkin", "backpack",
          "kettle", "puppet", "drum", "broom", "photo", "bucket", "compass", "bowl", "vase")
_PLACES = ("by the pond", "near the bus stop", "in the basement", "behind the barn",
           "at the market", "on the top shelf", "under the bed", "in the boat",
           "by the window", "at the bakery", "up the mountain path", "beside the pump",
           "in the museum", "near the harbour", "on the porch", "by the bridge")
_TIMES = ("before breakfast", "every Monday", "after midnight", "in the morning",
          "before the storm", "last September", "at lunch time", "on Sunday",
          "by the evening", "this spring", "every summer", "after the movie")
_QUALITIES = ("broken", "empty", "perfect", "bumpy", "warm", "spotless", "very heavy",
              "too small", "much bigger", "a bit damp", "completely full", "beautiful")


def _in_sentence(subject: str) -> str:
    """A subject inside a sentence: "The baker" -> "the baker"; names keep their capital."""
    first, _, rest = subject.partition(" ")
    return f"{first.lower()} {rest}" if first in ("The", "My", "Our") else subject


def _sentence(rng: np.random.Generator) -> str:
    def pick(words: tuple) -> str:
        return words[int(rng.integers(len(words)))]

    subject, (past, base) = pick(_SUBJECTS), pick(_VERBS)
    thing = f"the {pick(_ADJECTIVES)} {pick(_NOUNS)}"
    template = int(rng.integers(5))
    if template == 0:
        return f"{subject} {past} {thing} {pick(_PLACES)}."
    if template == 1:
        return f"{subject} {past} {thing} {pick(_TIMES)}."
    if template == 2:
        return f"Please {base} {thing} {pick(_PLACES)}."
    if template == 3:
        return f"{thing.capitalize()} {pick(_PLACES)} was {pick(_QUALITIES)} {pick(_TIMES)}."
    return f"Maybe {_in_sentence(subject)} will {base} {thing} {pick(_TIMES)}."


def sentence_pool() -> tuple[str, ...]:
    """`POOL_SIZE` distinct sentences, always the same."""
    rng = np.random.default_rng(POOL_SEED)
    pool: dict[str, None] = {}
    while len(pool) < POOL_SIZE:
        pool.setdefault(_sentence(rng))
    return tuple(pool)


def sentence_splits() -> dict[str, tuple[str, ...]]:
    """The pool divided by sentence: {split: sentences}, disjoint, always the same."""
    pool = sentence_pool()
    order = np.random.default_rng(POOL_SEED + 1).permutation(len(pool))
    splits, first = {}, 0
    for split, share in SPLIT_SHARES.items():
        count = round(share * len(pool))
        splits[split] = tuple(pool[i] for i in sorted(order[first : first + count]))
        first += count
    splits["train"] = tuple(pool[i] for i in sorted(order[first:]))
    return {split: splits[split] for split in ("train", *HELD_OUT_SPLITS)}


def held_out_sentences(split: str = "test") -> tuple[str, ...]:
    """Sentences of a held-out split (`val`, `test`, `test_speaker`): never spoken in any
    demo build's training split."""
    if split not in HELD_OUT_SPLITS:
        raise ValueError(f"held-out splits are {', '.join(HELD_OUT_SPLITS)}, not {split!r}")
    return sentence_splits()[split]
