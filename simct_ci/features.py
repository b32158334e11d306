"""Similarity features for one prompt: how close the candidate's responses are to the reference's.

Two layers, so that the model-wise test can re-split samples cheaply:
- `pair_similarities`: every pair of a prompt's pooled responses gets METRICS (symmetric numbers in [0, 1]),
  computed once per pair from statistics computed once per response;
- `split_features`: for a split of the pool into reference and candidate samples, the FEATURE_NAMES row
  (cross-stage means, within-stage means, their gap, lengths, query type) that the classifier scores.

BLEU and chrF come from sacrebleu's own n-gram extraction and scoring, ROUGE-L's LCS and the edit distance
from rapidfuzz; only the bookkeeping that lets each response's n-grams be counted once is ours. Tests check
every metric against sacrebleu's sentence scores and Google's rouge-score package.
METEOR is left out: it needs WordNet data, which cannot be downloaded at run time.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from rapidfuzz.distance import LCSseq, Levenshtein
from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF
from sacrebleu.metrics.helpers import extract_all_char_ngrams, extract_all_word_ngrams

FEATURE_SET = "v1"
BLEU_ORDER = 4
CHRF_CHAR_ORDER = 6

# Symmetric pair metrics; asymmetric ones (BLEU, chrF) are averaged over both directions so that a pair
# scores the same whichever side it is seen from.
METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "edit_sim", "length_ratio", "exact_match")
_AGGREGATES = ("cross", "within_ref", "within_cand", "gap")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{aggregate}_{metric}" for aggregate in _AGGREGATES for metric in METRICS),
    "log_len_ref",
    "log_len_cand",
    "log_len_shift",
    "cjk_share",
    "closed_query",
)

# CJK ideographs, kana and hangul are words of their own: Chinese and Japanese have no spaces to split on.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Deterministic, language-agnostic: CJK characters, runs of other word characters, single punctuation marks."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class ResponseStats:
    """Everything the pair metrics need from one response, computed once however many pairs it is in."""

    text: str
    tokens: tuple[str, ...]
    word_ngrams: tuple[Counter, ...]  # orders 1..BLEU_ORDER
    char_ngrams: tuple[Counter, ...]  # orders 1..CHRF_CHAR_ORDER, whitespace removed (chrF's default)
    cjk_share: float

    @classmethod
    def of(cls, text: str) -> ResponseStats:
        tokens = tuple(tokenize(text))
        return cls(
            text=text,
            tokens=tokens,
            word_ngrams=_word_ngrams_by_order(tokens),
            char_ngrams=tuple(extract_all_char_ngrams(text, CHRF_CHAR_ORDER)),
            cjk_share=len(_CJK_CHAR.findall(text)) / len(text) if text else 0.0,
        )

    @property
    def log_length(self) -> float:
        return math.log1p(len(self.tokens))


def _word_ngrams_by_order(tokens: tuple[str, ...]) -> tuple[Counter, ...]:
    """sacrebleu's extractor, regrouped by order so that BLEU and ROUGE-N share one count per order."""
    every_order, _ = extract_all_word_ngrams(" ".join(tokens), 1, BLEU_ORDER)
    by_order: list[Counter] = [Counter() for _ in range(BLEU_ORDER)]
    for ngram, count in every_order.items():
        by_order[len(ngram) - 1][ngram] = count
    return tuple(by_order)


@cache
def _chrf() -> CHRF:
    return CHRF(char_order=CHRF_CHAR_ORDER, word_order=0)


def _overlap(a: Counter, b: Counter) -> int:
    """Clipped n-gram matches, the quantity BLEU, chrF and ROUGE-N all count."""
    if len(a) > len(b):
        a, b = b, a
    return sum(min(count, b[gram]) for gram, count in a.items() if gram in b)


def _f1(overlap: int, total_a: int, total_b: int) -> float:
    return 2 * overlap / (total_a + total_b) if total_a + total_b else 1.0


def _bleu(matches: list[int], a: ResponseStats, b: ResponseStats) -> float:
    """Sentence BLEU as sacrebleu.sentence_bleu computes it (exp smoothing, effective order), both directions."""
    totals_a = [sum(c.values()) for c in a.word_ngrams]
    totals_b = [sum(c.values()) for c in b.word_ngrams]
    scores = [
        BLEU.compute_bleu(
            matches, totals, len(hyp.tokens), len(ref.tokens), smooth_method="exp", effective_order=True
        ).score
        for totals, hyp, ref in ((totals_a, a, b), (totals_b, b, a))
    ]
    return sum(scores) / 200.0


def _chrf_score(a: ResponseStats, b: ResponseStats) -> float:
    """chrF (beta 2, character 6-grams) as sacrebleu computes it, averaged over both directions."""
    forward: list[int] = []
    backward: list[int] = []
    for grams_a, grams_b in zip(a.char_ngrams, b.char_ngrams, strict=True):
        matches = _overlap(grams_a, grams_b)
        total_a, total_b = sum(grams_a.values()), sum(grams_b.values())
        forward += [total_a if grams_b else 0, total_b, matches]
        backward += [total_b if grams_a else 0, total_a, matches]
    chrf = _chrf()
    return (chrf._compute_f_score(forward) + chrf._compute_f_score(backward)) / 200.0


def pair_similarities(a: ResponseStats, b: ResponseStats) -> np.ndarray:
    """METRICS for one pair of responses, each in [0, 1], 1 meaning identical."""
    if a.text == b.text:
        return np.ones(len(METRICS))
    matches = [_overlap(ga, gb) for ga, gb in zip(a.word_ngrams, b.word_ngrams, strict=True)]
    unigrams_a, unigrams_b = sum(a.word_ngrams[0].values()), sum(b.word_ngrams[0].values())
    bigrams_a, bigrams_b = sum(a.word_ngrams[1].values()), sum(b.word_ngrams[1].values())
    lcs = LCSseq.similarity(a.tokens, b.tokens)
    longest = max(len(a.tokens), len(b.tokens))
    return np.array(
        [
            _bleu(matches, a, b),
            _chrf_score(a, b),
            _f1(matches[0], unigrams_a, unigrams_b),
            _f1(matches[1], bigrams_a, bigrams_b),
            _f1(lcs, len(a.tokens), len(b.tokens)),
            Levenshtein.normalized_similarity(a.text, b.text),
            min(len(a.tokens), len(b.tokens)) / longest if longest else 1.0,
            0.0,
        ]
    )


@dataclass(frozen=True)
class PromptPool:
    """One prompt's pooled responses (reference samples first) and the similarity of every pair."""

    stats: tuple[ResponseStats, ...]
    similarity: np.ndarray  # (n, n, len(METRICS)), symmetric; the diagonal is never read
    closed: bool

    @classmethod
    def of(cls, texts: Sequence[str], closed: bool) -> PromptPool:
        stats = tuple(ResponseStats.of(text) for text in texts)
        n = len(stats)
        similarity = np.ones((n, n, len(METRICS)))
        for i in range(n):
            for j in range(i + 1, n):
                similarity[i, j] = similarity[j, i] = pair_similarities(stats[i], stats[j])
        return cls(stats, similarity, closed)

    @property
    def size(self) -> int:
        return len(self.stats)


def _mean_over(similarity: np.ndarray, rows: np.ndarray, cols: np.ndarray, same_side: bool) -> np.ndarray:
    block = similarity[np.ix_(rows, cols)]
    if not same_side:
        return block.mean(axis=(0, 1))
    if len(rows) < 2:
        return np.full(len(METRICS), np.nan)
    upper = np.triu_indices(len(rows), k=1)
    return block[upper].mean(axis=0)


def _nan_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise mean of the values that exist; NaN where neither does (one sample per side)."""
    stacked = np.vstack([a, b])
    present = ~np.isnan(stacked)
    counts = present.sum(axis=0)
    totals = np.where(present, stacked, 0.0).sum(axis=0)
    return np.divide(totals, counts, out=np.full(a.shape, np.nan), where=counts > 0)


def split_features(pool: PromptPool, reference: Sequence[int], candidate: Sequence[int]) -> np.ndarray:
    """The FEATURE_NAMES row for one split of the pool into reference and candidate samples."""
    ref, cand = np.asarray(reference), np.asarray(candidate)
    cross = _mean_over(pool.similarity, ref, cand, same_side=False)
    within_ref = _mean_over(pool.similarity, ref, ref, same_side=True)
    within_cand = _mean_over(pool.similarity, cand, cand, same_side=True)
    within = _nan_mean(within_ref, within_cand)
    log_len_ref = float(np.mean([pool.stats[i].log_length for i in ref]))
    log_len_cand = float(np.mean([pool.stats[i].log_length for i in cand]))
    cjk = float(np.mean([s.cjk_share for s in pool.stats]))
    return np.concatenate(
        [
            cross,
            within_ref,
            within_cand,
            cross - within,
            [log_len_ref, log_len_cand, log_len_cand - log_len_ref, cjk, float(pool.closed)],
        ]
    )


def observed_features(reference: Sequence[str], candidate: Sequence[str], closed: bool) -> np.ndarray:
    """Features of the split the stages actually produced: reference samples against candidate samples."""
    pool = PromptPool.of([*reference, *candidate], closed)
    return split_features(pool, range(len(reference)), range(len(reference), pool.size))
