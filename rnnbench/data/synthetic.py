"""The built-in synthetic corpus: review-like paragraphs whose label depends on word order.

The rule (the generator labels every text with :func:`rule_score`, so rule and data cannot drift):

* A text is a sequence of sentences ending in ``.``. Neutral sentences ("we saw it on a rainy
  sunday .") carry no sentiment words and count for nothing.
* A sentiment clause is ``[it is not true that] SUBJECT VERB [NEGATORS] [ADVERBS] [INTENSIFIER] ADJ``.
  Its polarity is the adjective's (+1 or -1), flipped once for every negator in the clause
  (``not``, ``never``, ``hardly``; the ``not`` of "it is not true that" counts, so "it is not true
  that the plot was not good" is a double negation, i.e. positive). Adverbs ("really",
  "particularly", …) sit between the negator and the adjective and do not change anything, so the
  negator is usually *not* next to the word it flips. An intensifier ("very", "extremely", …) doubles
  the clause's weight.
* Contrast: in "A , but B" and "although A , B" only B counts: the later clause dominates.
* The score is the sum of the counted clauses' signed weights; a text whose score would be 0 gets
  one more clause. Label: ``score > 0``. ``noise`` flips that fraction of labels at random (so the
  best possible accuracy, the *ceiling*, is ``1 - noise``). Regression variant: target
  ``tanh(score / 2)`` plus Gaussian noise of std ``noise``.

A bag of unigrams and bigrams sees which adjectives occur but not which of them are negated or
discounted by a contrast, so it plateaus well below the ceiling; an order-aware model can keep
improving with data. ``scripts/bench_synthetic.py`` measures that gap.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from .corpus import Corpus, LoadReport, Split, task_for

if TYPE_CHECKING:
    from ..config import SyntheticConfig

# How often each construction appears (per clause or per sentence).
P_NEGATED = 0.35
P_INTENSIFIED = 0.3
P_DOUBLE_NEGATION = 0.1
P_BUT = 0.2
P_ALTHOUGH = 0.1

POSITIVE = ("good great wonderful brilliant charming clever moving solid fun excellent enjoyable "
            "gripping superb delightful").split()
NEGATIVE = ("bad awful boring dull weak clumsy tedious terrible messy bland forgettable painful "
            "dreadful lifeless").split()
NEGATORS = ("not", "never", "hardly")
ADVERBS = ("really", "particularly", "exactly", "remotely", "all that", "in any way", "actually")
INTENSIFIERS = ("very", "extremely", "incredibly", "truly", "remarkably")
SUBJECTS = ("the acting", "the plot", "the soundtrack", "the ending", "the cast", "the pacing",
            "the dialogue", "the camera work", "this film", "the story", "the director", "the script",
            "the lead", "the humour", "the second half", "the opening")
VERBS = ("was", "is", "felt", "seemed", "looked", "turned out")
DOUBLE_NEG = "it is not true that"

_NEUTRAL = (
    "we saw it on a {day} with my {person} .",
    "i watched it at the {place} last {day} .",
    "my {person} recommended it to me .",
    "it runs about {n} minutes and was released in {year} .",
    "the {place} was {crowd} that night .",
    "i had read about it in a {source} before .",
    "we bought {snack} and sat near the back .",
    "it is based on a {source} from {year} .",
)
_FILL = {
    "day": "monday tuesday wednesday thursday friday saturday sunday weekend evening".split(),
    "person": "sister brother friend mother father cousin neighbour colleague".split(),
    "place": "cinema theater festival library house".split(),
    "n": [str(i) for i in range(85, 180, 5)],
    "year": [str(y) for y in range(1970, 2016)],
    "crowd": "crowded empty quiet packed half-full".split(),
    "source": "magazine newspaper blog novel comic play".split(),
    "snack": "popcorn candy nachos soda tea".split(),
}

_POL = {w: 1 for w in POSITIVE} | {w: -1 for w in NEGATIVE}
_NEG = set(NEGATORS)
_INT = set(INTENSIFIERS)


def clause_score(words: list[str]) -> int:
    """Signed weight of one clause: adjective polarity × (-1)^negators × (2 if intensified)."""
    pol = next((_POL[w] for w in words if w in _POL), 0)
    if pol == 0:
        return 0
    flips = sum(w in _NEG for w in words)
    weight = 2 if any(w in _INT for w in words) else 1
    return pol * weight * (-1) ** flips


def sentence_score(words: list[str]) -> int:
    """Score of one sentence: with a contrast only the later clause counts."""
    if "but" in words:
        words = words[len(words) - words[::-1].index("but"):]
    elif words and words[0] == "although" and "," in words:
        words = words[words.index(",") + 1:]
    return clause_score(words)


def rule_score(text: str) -> int:
    """The rule's score of a text written in the corpus grammar (lowercase, space-separated)."""
    score, sentence = 0, []
    for w in text.split():
        if w == ".":
            score += sentence_score(sentence)
            sentence = []
        else:
            sentence.append(w)
    return score + sentence_score(sentence)


def rule_label(text: str) -> int:
    return int(rule_score(text) > 0)


class _Writer:
    """Writes paragraphs in the corpus grammar. Uses :class:`random.Random`: scalar draws from it are
    an order of magnitude cheaper than numpy's, and it is just as deterministic per seed."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.pick = self.rng.choice

    def clause(self) -> str:
        r = self.rng.random
        parts = [self.pick(SUBJECTS), self.pick(VERBS)]
        if r() < P_NEGATED:
            parts.append(self.pick(NEGATORS))
            for _ in range(self.rng.randint(0, 2)):
                parts.append(self.pick(ADVERBS))
        if r() < P_INTENSIFIED:
            parts.append(self.pick(INTENSIFIERS))
        parts.append(self.pick(POSITIVE if r() < 0.5 else NEGATIVE))
        text = " ".join(parts)
        if r() < P_DOUBLE_NEGATION:
            text = f"{DOUBLE_NEG} {text}"
        return text

    def sentence(self) -> str:
        u = self.rng.random()
        if u < P_BUT:
            return f"{self.clause()} , but {self.clause()} ."
        if u < P_BUT + P_ALTHOUGH:
            return f"although {self.clause()} , {self.clause()} ."
        return f"{self.clause()} ."

    def neutral(self) -> str:
        template = self.pick(_NEUTRAL)
        return template.format(**{k: self.pick(v) for k, v in _FILL.items()})

    def paragraph(self, mean_tokens: int) -> str:
        n_sent = self.rng.randint(1, 3)
        sentences = [self.sentence() for _ in range(n_sent)]
        n_tokens = sum(s.count(" ") + 1 for s in sentences)
        target = max(self.rng.gauss(mean_tokens, mean_tokens / 4), 10)
        while n_tokens < target:
            s = self.neutral()
            sentences.insert(self.rng.randint(0, len(sentences)), s)
            n_tokens += s.count(" ") + 1
        text = " ".join(sentences)
        while rule_score(text) == 0:
            text += " " + self.sentence()
        return text


def generate(n: int, seed: int, mean_tokens: int = 80, noise: float = 0.0,
             regression: bool = False) -> tuple[list[str], np.ndarray]:
    """``n`` texts and their labels (int 0/1) or targets (float), deterministic in ``seed``."""
    writer = _Writer(seed)
    texts = [writer.paragraph(mean_tokens) for _ in range(n)]
    scores = np.array([rule_score(t) for t in texts], dtype=np.float64)
    noise_rng = np.random.default_rng([seed, 7])
    if regression:
        y = np.tanh(scores / 2.0) + noise_rng.normal(0.0, noise, size=n) if noise else np.tanh(scores / 2.0)
        return texts, y.astype(np.float64)
    labels = (scores > 0).astype(np.int64)
    flip = noise_rng.random(n) < noise
    labels[flip] = 1 - labels[flip]
    return texts, labels


def load_synthetic(task: str, *, synthetic: SyntheticConfig) -> Corpus:
    """The synthetic corpus for ``task`` ("sentiment": labels, "score": regression targets): a training
    pool and a test split generated from two seeds that follow from ``synthetic.corpus_seed``."""
    s = synthetic
    regression = task == "score"
    tr = generate(s.train_size, seed=s.corpus_seed, mean_tokens=s.mean_tokens, noise=s.noise, regression=regression)
    te = generate(s.test_size, seed=s.corpus_seed + 1_000_003, mean_tokens=s.mean_tokens, noise=s.noise,
                  regression=regression)
    report = LoadReport(read=Counter(train=s.train_size, test=s.test_size))
    train, test = Split(*tr), Split(*te)
    return Corpus("synthetic", task_for(task, "regression" if regression else "binary", train.y), train, test, report)
