"""Known words for the recognizer: a misread word one edit away from a dictionary word the
frames also support is read as that word.

    correct(probs, known, prior=5.0)    # the line's text after greedy CTC, words corrected

Greedy CTC reads each timestep's best class, so one doubtful letter makes a word that is no
word ('AUSGAUG', 'Strase'). For each word of the greedy line that `known` does not know,
the candidates are the words one edit away that the frames hold some evidence for: a letter
replaced by one of its frames' runner-up letters, a letter dropped, a letter doubled, or a
letter put into a gap between letters where some frame holds it. Each known candidate (cased
like the word read) is scored by its CTC likelihood over the word's own frames, and the best
one replaces the word when it is at least 1/`prior` as likely as the word read: a word the
dictionary knows is taken `prior` times likelier than one it does not. Names and codes the
dictionary lacks, and words whose frames hold no evidence for a known neighbour, stay as read.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from device.stages.charset import BLANK, CHARSET, decode, encode
from device.stages.ctc import run_starts

EVIDENCE = 0.05
"""A runner-up letter counts as evidence where a frame gives it at least this probability."""
MIN_LETTERS = 4
"""Shorter words are left as read, and no candidate is shorter: three letters are as often a
code or a name ('IPL', 'AXS') as a misread word, and one edit away from many words."""
_LETTERS = frozenset(ch for ch in CHARSET if ch.isalpha())


def _runs(best: np.ndarray) -> list[tuple[int, int, int]]:
    """(class, first frame, last frame) of each run of equal best classes."""
    starts = run_starts(best)
    ends = np.r_[starts[1:], len(best)] - 1
    return [(int(best[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def log_likelihood(probs: np.ndarray, label: list[int]) -> float:
    """log P(label | frames) under CTC (the forward algorithm, in log space)."""
    ext = [BLANK]
    for c in label:
        ext += [c, BLANK]
    n = len(ext)
    logp = np.log(np.clip(probs[:, ext], 1e-12, 1.0))
    skip = np.array([i >= 2 and ext[i] != BLANK and ext[i] != ext[i - 2] for i in range(n)])
    alpha = np.full(n, -np.inf)
    alpha[0] = logp[0, 0]
    if n > 1:
        alpha[1] = logp[0, 1]
    for t in range(1, len(probs)):
        prev = alpha.copy()
        shifted1 = np.r_[-np.inf, prev[:-1]]
        shifted2 = np.where(skip, np.r_[-np.inf, -np.inf, prev[:-2]], -np.inf)
        alpha = np.logaddexp(np.logaddexp(prev, shifted1), shifted2) + logp[t]
    return float(np.logaddexp(alpha[-1], alpha[-2]) if n > 1 else alpha[-1])


def _cased(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _candidates(chars: list[tuple[int, int, int]], probs: np.ndarray) -> set[str]:
    """Words one edit away from the run of letters `chars` ((class, first, last) each) that
    the frames hold evidence for (see the module's docstring)."""
    text = decode([c for c, _, _ in chars])
    out = set()
    for i, (_, first, last) in enumerate(chars):
        out.add(text[:i] + text[i + 1:])                                 # dropped
        out.add(text[:i + 1] + text[i:])                                 # doubled
        span = probs[first:last + 1].max(axis=0)
        for c in np.flatnonzero(span >= EVIDENCE):
            if c != BLANK and c != chars[i][0]:
                out.add(text[:i] + decode([int(c)]) + text[i + 1:])      # replaced
        if i + 1 < len(chars) and chars[i + 1][1] > last + 1:             # a gap after it
            gap = probs[last + 1:chars[i + 1][1]].max(axis=0)
            for c in np.flatnonzero(gap >= EVIDENCE):
                if c != BLANK:
                    out.add(text[:i + 1] + decode([int(c)]) + text[i + 1:])   # put in
    out.discard(text)
    return {w for w in out if len(w) >= MIN_LETTERS and all(ch in _LETTERS for ch in w)}


def correct(probs: np.ndarray, known: Callable[[str], bool], prior: float = 5.0) -> str:
    """The greedy reading of `probs` [T, C] with each unknown word replaced by its best
    known neighbour where the frames allow it (module docstring). A word is a run of
    letters between non-letters ('AUSGAUG.' → 'AUSGAUG'; digits and marks stay as read);
    `known` takes a lowercase word."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or len(probs) == 0:
        return ""
    runs = [r for r in _runs(probs.argmax(axis=1)) if r[0] != BLANK]
    letter = [decode([c]) in _LETTERS for c, _, _ in runs]
    out, i, threshold = [], 0, math.log(prior)
    while i < len(runs):
        if not letter[i]:
            out.append(decode([runs[i][0]]))
            i += 1
            continue
        j = i
        while j + 1 < len(runs) and letter[j + 1]:
            j += 1
        word = runs[i:j + 1]
        text = decode([c for c, _, _ in word])
        out.append(text)
        i = j + 1
        if len(text) < MIN_LETTERS or known(text.lower()):
            continue
        options = {w for w in _candidates(word, probs) if known(w.lower())}
        if not options:
            continue
        # the word's frames: from after the run before it to before the run after it
        first = runs[i - len(word) - 1][2] + 1 if i - len(word) > 0 else 0
        last = runs[i][1] - 1 if i < len(runs) else len(probs) - 1
        window = probs[first:last + 1]
        base = log_likelihood(window, encode(text))
        # a candidate scores in the case it was found in ('AusgaNg': a runner-up capital)
        # or cased like the word read, whichever the frames like better; it is written cased
        # like the word read
        score, best = max((max(log_likelihood(window, encode(form))
                               for form in {w, _cased(w.lower(), text)}),
                           _cased(w.lower(), text)) for w in options)
        if score + threshold > base:
            out[-1] = best
    return "".join(out)


class Lexicon:
    """The words a recognizer checks its readings against: none until a dictionary is
    filled in (the translator's phrasebook loads after the recognizer, off the start-up path),
    so every recognizer built with it reads as it will once the words are there."""

    def __init__(self) -> None:
        self._known: Callable[[str], bool] | None = None

    def fill(self, book) -> None:
        """The words of a phrasebook (`Phrasebook.knows_word`); None: no words."""
        self._known = book.knows_word if book is not None else None

    @property
    def empty(self) -> bool:
        """No words yet: a recognizer reads as it is (no candidates made for nothing)."""
        return self._known is None

    def __call__(self, lower: str) -> bool:
        known = self._known
        return known is not None and known(lower)
