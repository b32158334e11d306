"""Similarity features for one prompt: how close the candidate's responses are to the reference's.

Two layers, so that the model-wise test can re-split samples cheaply:
- `pair_similarities`: every pair of a prompt's pooled responses gets METRICS (symmetric numbers in [0, 1]),
  computed once per pair from statistics computed once per response;
- `split_features`: for a split of the pool into reference and candidate samples, the FEATURE_NAMES row
  (cross-stage means, within-stage means, their gap, lengths, query type) that the classifier scores.

BLEU and chrF are sacrebleu's sentence scores (its scoring arithmetic, transcribed so that no score object is
built per pair; tests hold it to sacrebleu's own functions, bit for bit), ROUGE-L's LCS and the edit distance come
from rapidfuzz; the n-gram bookkeeping is ours: each response's word and character n-grams are counted once, as
sorted arrays of 64-bit keys, so that a pair's clipped matches take a handful of numpy calls. Tests check every
metric against sacrebleu's sentence scores and Google's rouge-score package, on fixed and on generated text.
METEOR is left out: it needs WordNet data, which cannot be downloaded at run time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq, Levenshtein

FEATURE_SET = "v2"
BLEU_ORDER = 4
CHRF_CHAR_ORDER = 6

# Symmetric pair metrics; asymmetric ones (BLEU, chrF) are averaged over both directions so that a pair
# scores the same whichever side it is seen from.
METRICS = ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "edit_sim", "length_ratio", "exact_match", "prefix")
# diversity_shift (within_cand - within_ref) tells a sampling change (temperature, top-p) from a content change.
_AGGREGATES = ("cross", "within_ref", "within_cand", "gap", "diversity_shift")
# Per-response style measures compared between the sides, signed and absolute: a change the model never saw
# in training (say, shorter answers) still shows as a large absolute shift.
_STYLES = ("log_len", "repetition", "log_lines")
PREFIX_TOKENS = 8  # how many leading tokens the prefix metric compares: openers are a deployment's fingerprint
FEATURE_NAMES: tuple[str, ...] = (
    *(f"{aggregate}_{metric}" for aggregate in _AGGREGATES for metric in METRICS),
    *(f"{style}_{part}" for style in _STYLES for part in ("ref", "cand", "shift", "abs_shift")),
    "cjk_share",
    "closed_query",
)

# CJK ideographs, kana and hangul are words of their own: Chinese and Japanese have no spaces to split on.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|[^\w\s]")
# The same tokens for ASCII text, a third faster. The word class is spelled out rather than taken from re.ASCII,
# whose \s would miss the separators \x1c-\x1f that str.isspace() and Unicode \s count as whitespace.
_ASCII_TOKEN = re.compile(r"[0-9A-Za-z_]+|[^0-9A-Za-z_\s]")


def tokenize(text: str) -> list[str]:
    """Deterministic, language-agnostic: CJK characters, runs of other word characters, single punctuation marks."""
    return (_ASCII_TOKEN if text.isascii() else _TOKEN).findall(text)


@dataclass(frozen=True, eq=False, slots=True)
class ResponseStats:
    """Everything the pair metrics need from one response, computed once however many pairs it is in."""

    text: str
    tokens: tuple[str, ...]
    ngram_keys: np.ndarray  # distinct n-gram keys, sorted (see _ngram_keys); the last one is _PADDING
    ngram_counts: np.ndarray  # occurrences of each key in the response; 0 for padding, which never matches
    word_totals: tuple[int, ...]  # word n-grams of orders 1..BLEU_ORDER, repeats included
    char_totals: tuple[int, ...]  # character n-grams of orders 1..CHRF_CHAR_ORDER, whitespace removed
    cjk_share: float
    repetition: float  # share of the response's word bigrams that repeat an earlier one (degenerate loops)
    log_lines: float  # log(1 + newlines): lists and paragraphs versus one block

    @classmethod
    def of(cls, text: str) -> ResponseStats:
        tokens = tuple(tokenize(text))
        # chrF's default drops all whitespace before taking character n-grams (sacrebleu: "".join(text.split())).
        # Tokens cover every other character once, in order (checked for every code point), and join faster.
        chars = "".join(tokens)
        keys, counts = _distinct_counts(_ngram_keys(tokens, chars))
        word_totals = _totals(len(tokens), BLEU_ORDER)
        bigrams = word_totals[1]
        # The distinct word bigrams are the distinct keys of their kind, below its padding: one lookup of two keys.
        start, end = keys.searchsorted(_BIGRAM_SPAN).tolist()
        distinct_bigrams = end - start
        return cls(
            text=text,
            tokens=tokens,
            ngram_keys=keys,
            ngram_counts=counts,
            word_totals=word_totals,
            char_totals=_totals(len(chars), CHRF_CHAR_ORDER),
            cjk_share=0.0 if text.isascii() else (len(text) - len(_CJK_RUN.sub("", text))) / len(text),
            repetition=1.0 - distinct_bigrams / bigrams if bigrams else 0.0,
            log_lines=math.log1p(text.count("\n")),
        )

    @property
    def log_len(self) -> float:
        return math.log1p(len(self.tokens))


def _totals(units: int, max_order: int) -> tuple[int, ...]:
    """How many n-grams of each order 1..max_order a sequence of `units` has."""
    if units >= max_order:
        return tuple(range(units, units - max_order, -1))
    return tuple([max(units - k, 0) for k in range(max_order)])


# N-gram bookkeeping. Every word n-gram (orders 1..BLEU_ORDER) and character n-gram (orders 1..CHRF_CHAR_ORDER)
# of a response becomes one 64-bit key: its kind (words or characters, and the order) in the top 4 bits, a
# polynomial rolling hash of its units in the low 60. The distinct keys of all kinds sit in one sorted array, so
# that one lookup of one response's keys in the other's finds a pair's clipped matches for every kind at once.
#
# Units are code points for characters and, for tokens, Python's hash of their UTF-8 bytes (_token_units). That
# hash is salted per process, which is fine: only equality is ever used. Two distinct n-grams of one kind (of text
# not crafted to collide) share a key with probability 2**-60; with ~1,300 keys a response, a pair miscounts a
# match less than once in 10**12 pairs: negligible. Only integers are summed in key order, so results depend
# neither on the salt nor on the order the keys sort in.
#
# Kinds interleave, 2k for words and 2k + 1 for characters of order k + 1, so that sorting each row of the
# (order, position) matrix of _ngram_keys sorts the whole flattened matrix.
_ORDERS = max(BLEU_ORDER, CHRF_CHAR_ORDER)
_WORD_KINDS = slice(0, 2 * BLEU_ORDER, 2)
_CHAR_KINDS = slice(1, 2 * CHRF_CHAR_ORDER, 2)
_KIND_BITS = 4
_HASH_BITS = np.uint64(64 - _KIND_BITS)
_KIND_SLOTS = 1 << _KIND_BITS
_KIND_TAGS = np.arange(_KIND_SLOTS, dtype=np.uint64) << _HASH_BITS
# Multiplying by an odd constant spreads code points over all 64 bits, injectively; the rolling step (times an
# odd base, plus the next unit) mixes an n-gram's units into one number, whose top 60 bits become its hash.
_UNIT_SCALE = np.uint64(0xBF58476D1CE4E5B9)
_BASE = np.uint64(0x9E3779B97F4A7C15)
# Where a row has no n-gram (past the end, across the words-characters border, words beyond BLEU_ORDER) it holds
# its kind's largest key, padding, counted 0. The last slot holds 2**64 - 1, larger than any key, so that a
# lookup never runs off the end of an array.
_PADDING = np.uint64(2**64 - 1)
_HASH_ONES = _PADDING >> _KIND_BITS  # the hash bits of padding
_KIND_PADDINGS = _KIND_TAGS | _HASH_ONES  # ascending; the last one is _PADDING
_BIGRAM_KIND = _WORD_KINDS.start + _WORD_KINDS.step
_BIGRAM_SPAN = np.array([_KIND_TAGS[_BIGRAM_KIND], _KIND_PADDINGS[_BIGRAM_KIND]])  # word bigram keys lie in between
# _ngram_keys slices its constants from tables 2**bits units wide: 4,096 cover all but the longest responses.
# Tables up to 2**14 units wide are kept (under 5 MB in all); longer responses, rare, build theirs and drop them.
_MIN_TABLE_BITS = 12
_MAX_KEPT_TABLE_BITS = 14


@dataclass(frozen=True)
class _HashTables:
    """Constants for rows of up to `size` units, so that _ngram_keys is a handful of whole-matrix numpy calls."""

    size: int
    powers: np.ndarray  # (_ORDERS, size): row k, column i holds _BASE ** (i + k), modulo 2**64
    scaled_inverse: np.ndarray  # _UNIT_SCALE * _BASE ** -i: _BASE is odd, so it has an inverse modulo 2**64
    # (_ORDERS, size), right-aligned against a row's end: all 64 bits set in row k's last k places, past the end.
    past_end: np.ndarray
    # (_ORDERS, 2 * size), aligned on the words-characters border at column `size`: each row's word tag to the
    # left, character tag to the right, and padding's hash bits where a word n-gram would cross the border or
    # exceed BLEU_ORDER.
    tags: np.ndarray


def _tables_for(units: int) -> _HashTables:
    """Tables at least `units` wide."""
    bits = max(_MIN_TABLE_BITS, (units - 1).bit_length())
    return _kept_tables(bits) if bits <= _MAX_KEPT_TABLE_BITS else _hash_tables(bits)


def _hash_tables(bits: int) -> _HashTables:
    """The constants of _HashTables for rows up to 2**bits units wide."""
    size = 1 << bits
    # Integer arrays wrap modulo 2**64, exactly like the hash: accumulated products of a constant are its powers.
    powers = np.ones(size + _ORDERS, dtype=np.uint64)
    np.multiply.accumulate(np.full(size + _ORDERS - 1, _BASE), out=powers[1:])
    inverse_powers = np.ones(size, dtype=np.uint64)
    np.multiply.accumulate(np.full(size - 1, np.uint64(pow(int(_BASE), -1, 2**64))), out=inverse_powers[1:])
    past_end = np.zeros((_ORDERS, size), dtype=np.uint64)
    tags = np.empty((_ORDERS, 2 * size), dtype=np.uint64)
    for order in range(_ORDERS):
        past_end[order, size - order :] = _PADDING
        tags[order, :size] = _KIND_TAGS[_WORD_KINDS.start + _WORD_KINDS.step * order]
        tags[order, size:] = _KIND_TAGS[_CHAR_KINDS.start + _CHAR_KINDS.step * order]
        # Word n-grams that would run into the characters (a row's last `order` word places), and all of them
        # beyond BLEU_ORDER, are padding.
        padded = size - order if order < BLEU_ORDER else 0
        tags[order, padded:size] |= _HASH_ONES
    windows = np.lib.stride_tricks.sliding_window_view(powers, size)[:_ORDERS]
    return _HashTables(size, windows, inverse_powers * _UNIT_SCALE, past_end, tags)


_kept_tables = cache(_hash_tables)


# CPython hashes a str's raw bytes, 1, 2 or 4 a character, so "of" (two 1-byte characters) and "景" (one 2-byte
# character, U+666F) share a str hash. Their UTF-8 bytes differ: a token's unit is the hash of its UTF-8 bytes. An
# ASCII str's raw bytes are its UTF-8 bytes, and CPython hashes str and bytes with the same function, so for ASCII
# tokens the str hash is that unit, with nothing to encode: one pass over the tokens, where telling widths apart
# with the str hash took a second one (their lengths). Two responses in three are ASCII. Checked, not assumed:
_STR_HASH_IS_UTF8_HASH = hash("of the") == hash(b"of the")


def _token_units(tokens: tuple[str, ...], all_ascii: bool, out: np.ndarray) -> None:
    """Into `out`, one 64-bit unit per token: equal for equal tokens and, but for chance, different otherwise.

    `all_ascii`: every token is ASCII, so that their str hashes are the hashes of their UTF-8 bytes.
    """
    utf8 = tokens if all_ascii and _STR_HASH_IS_UTF8_HASH else map(str.encode, tokens)
    out[:] = np.fromiter(map(hash, utf8), dtype=np.int64, count=len(tokens)).view(np.uint64)


def _ngram_keys(tokens: tuple[str, ...], chars: str) -> np.ndarray:
    """Keys of every word and character n-gram, repeats included, sorted; padding where a row has no n-gram.

    One (_ORDERS, words + characters) matrix: row k's column i holds the n-gram of order k + 1 that starts at
    unit i of the tokens followed by the characters. The rolling hash of that n-gram is
    sum(unit[j] * B ** (i + k - j)) over i <= j <= i + k; with prefix[t] = sum(unit[j] * B ** -j) over j < t, it is
    B ** (i + k) * (prefix[i + k + 1] - prefix[i]), so one subtraction and one multiplication fill the whole matrix.
    Rows are then sorted one by one; since kinds grow with the row, the flat array is sorted too.
    """
    words = len(tokens)
    code_points = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)
    width = words + len(code_points)
    tables = _tables_for(width)
    # _ORDERS slots past the end, so that every window can be read; whatever they hold, those windows become padding.
    prefix = np.empty(width + _ORDERS, dtype=np.uint64)
    prefix[0] = 0
    units = prefix[1 : width + 1]
    _token_units(tokens, chars.isascii(), out=units[:words])  # the tokens are ASCII if their characters are
    units[words:] = code_points
    np.multiply(units, tables.scaled_inverse[:width], out=units)
    np.add.accumulate(units, out=units)
    flat = np.empty(_ORDERS * width + 1, dtype=np.uint64)
    flat[-1] = _PADDING
    rows = flat[:-1].reshape(_ORDERS, width)
    # window_ends[k, i] = prefix[i + k + 1]: a strided view, no copy.
    window_ends = np.ndarray((_ORDERS, width), dtype=np.uint64, buffer=prefix, offset=8, strides=(8, 8))
    np.subtract(window_ends, prefix[:width], out=rows)
    np.multiply(rows, tables.powers[:, :width], out=rows)
    # Windows past the end get all bits set; after the shift, tagging gives them and those the tags pad their
    # kind's padding key. Whole-matrix calls with slices of the tables, not a call per row or per region.
    np.bitwise_or(rows, tables.past_end[:, tables.size - width :], out=rows)
    np.right_shift(rows, _KIND_BITS, out=rows)
    np.bitwise_or(rows, tables.tags[:, tables.size - words : tables.size - words + width], out=rows)
    # In every row the word keys sort before the character keys (kind 2k < 2k + 1), so sorting the two parts apart
    # sorts the row, for less work than sorting it whole; and the word part of rows past BLEU_ORDER, all padding, is
    # sorted already. A quarter of the sorting time saved (measured on the benchmark's responses).
    rows[:BLEU_ORDER, :words].sort(axis=1)
    rows[:, words:].sort(axis=1)
    return flat


def _distinct_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys of sorted `keys` and how often each occurs, padding counted 0."""
    # boundary[i]: a run of equal keys starts at i; the extra last one closes the last run.
    boundary = np.empty(len(keys) + 1, dtype=bool)
    boundary[0] = boundary[-1] = True
    np.not_equal(keys[1:], keys[:-1], out=boundary[1:-1])
    starts = boundary.nonzero()[0]
    distinct = keys[starts[:-1]]
    counts = starts[1:] - starts[:-1]
    # Each kind's padding, where present, is where a lookup of it lands: a dozen lookups, not a pass over all keys.
    at = distinct.searchsorted(_KIND_PADDINGS)
    counts[at[distinct[at] == _KIND_PADDINGS]] = 0
    return distinct, counts


def _clipped_matches(a: ResponseStats, b: ResponseStats) -> list[int]:
    """Per kind, the n-grams the two responses share, each counted min(count in a, count in b) times.

    This is the quantity BLEU, chrF and ROUGE-N all count. The shorter key array is looked up in the longer one;
    both end with the largest possible key, so every lookup lands inside the array.
    """
    if len(a.ngram_keys) > len(b.ngram_keys):
        a, b = b, a
    at = b.ngram_keys.searchsorted(a.ngram_keys)
    # Most n-grams are not shared (~85% on real pairs): narrow down to those that are before counting.
    shared = (b.ngram_keys[at] == a.ngram_keys).nonzero()[0]
    clipped = np.minimum(a.ngram_counts[shared], b.ngram_counts[at[shared]])
    kinds = (a.ngram_keys[shared] >> _HASH_BITS).view(np.intp)
    return np.bincount(kinds, weights=clipped, minlength=_KIND_SLOTS).astype(np.int64).tolist()


def _f1(overlap: int, total_a: int, total_b: int) -> float:
    # Nothing on either side counts as identical. For ROUGE-2 of two texts without a bigram rouge-score says 0;
    # feature set v1, which the bundled model was trained on, says 1.
    return 2 * overlap / (total_a + total_b) if total_a + total_b else 1.0


def _bleu(matches: list[int], a: ResponseStats, b: ResponseStats) -> float:
    """Sentence BLEU as sacrebleu.sentence_bleu computes it (exp smoothing, effective order), both directions."""
    forward = _sentence_bleu(matches, a.word_totals, len(a.tokens), len(b.tokens))
    backward = _sentence_bleu(matches, b.word_totals, len(b.tokens), len(a.tokens))
    return (forward + backward) / 200.0


def _sentence_bleu(matches: Sequence[int], totals: Sequence[int], hyp_len: int, ref_len: int) -> float:
    """sacrebleu's BLEU.compute_bleu(matches, totals, hyp_len, ref_len, "exp", effective_order=True).score.

    Its arithmetic, operation for operation, so the float is the same to the last bit (a test checks it against
    sacrebleu): compute_bleu also builds a BLEUScore and formats its display strings, most of its cost.
    """
    if not any(matches):
        return 0.0
    brevity = 1.0
    if hyp_len < ref_len:
        brevity = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    # log of each order's precision, up to the effective order: the orders the hypothesis is not too short for.
    # With a match somewhere, there is at least one, and no precision is 0 (sacrebleu's my_log floor never applies).
    logs: list[float] = []
    smooth = 1.0
    for match, total in zip(matches, totals, strict=True):
        if total == 0:
            break
        if match == 0:
            smooth *= 2  # "exp" smoothing: 1 / 2**k for the k-th order without a match
            logs.append(math.log(100.0 / (smooth * total)))
        else:
            logs.append(math.log(100.0 * match / total))
    return brevity * math.exp(sum(logs) / len(logs))


_CHRF_BETA = 2


def _chrf_score(matches: Sequence[int], totals_a: Sequence[int], totals_b: Sequence[int]) -> float:
    """chrF (beta 2, character 6-grams, no word n-grams) as sacrebleu's CHRF computes it, both directions averaged.

    sacrebleu averages precision and recall over the orders both sides have n-grams of, then takes their F-beta
    (CHRF._compute_f_score, eps smoothing off: its default). From b's side precision and recall swap. Transcribed
    like _sentence_bleu, and checked against sacrebleu to the last bit.
    """
    precision = recall = 0.0
    orders = 0
    for match, total_a, total_b in zip(matches, totals_a, totals_b, strict=True):
        if total_a and total_b:
            precision += match / total_a
            recall += match / total_b
            orders += 1
    if orders:
        precision /= orders
        recall /= orders
    return (_f_beta(precision, recall) + _f_beta(recall, precision)) / 200.0


def _f_beta(precision: float, recall: float) -> float:
    """The end of CHRF._compute_f_score, on a 0-100 scale."""
    if precision + recall:
        factor = _CHRF_BETA**2
        score = (1 + factor) * precision * recall
        score /= (factor * precision) + recall
        return 100 * score
    return 0.0


def pair_similarities(a: ResponseStats, b: ResponseStats) -> np.ndarray:
    """METRICS for one pair of responses, each in [0, 1], 1 meaning identical."""
    return np.array(_pair_metrics(a, b))


def _pair_metrics(a: ResponseStats, b: ResponseStats, lcs: int | None = None) -> list[float]:
    """pair_similarities as a list; `lcs`, the pair's longest common token subsequence, if already computed."""
    if a.text == b.text:
        return [1.0] * len(METRICS)
    matches = _clipped_matches(a, b)
    words, chars = matches[_WORD_KINDS], matches[_CHAR_KINDS]
    if lcs is None:
        lcs = LCSseq.similarity(a.tokens, b.tokens)
    longest = max(len(a.tokens), len(b.tokens))
    return [
        _bleu(words, a, b),
        _chrf_score(chars, a.char_totals, b.char_totals),
        _f1(words[0], a.word_totals[0], b.word_totals[0]),
        _f1(words[1], a.word_totals[1], b.word_totals[1]),
        _f1(lcs, len(a.tokens), len(b.tokens)),
        Levenshtein.normalized_similarity(a.text, b.text),
        min(len(a.tokens), len(b.tokens)) / longest if longest else 1.0,
        0.0,
        _prefix_similarity(a.tokens, b.tokens),
    ]


def _prefix_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Share of the first PREFIX_TOKENS tokens the two responses have in common before they part."""
    span = min(PREFIX_TOKENS, len(a), len(b))
    if span == 0:
        return 1.0 if len(a) == len(b) else 0.0
    common = 0
    while common < span and a[common] == b[common]:
        common += 1
    return common / span


@dataclass(frozen=True)
class PromptPool:
    """One prompt's pooled responses (reference samples first) and the similarity of every pair."""

    stats: tuple[ResponseStats, ...]
    similarity: np.ndarray  # (n, n, len(METRICS)), symmetric; the diagonal holds ones (a sample against itself)
    closed: bool
    styles: np.ndarray  # (n, len(_STYLES)): each response's style measures
    cjk_share: float  # over every response of the prompt

    @classmethod
    def of(cls, texts: Sequence[str], closed: bool) -> PromptPool:
        stats = tuple(ResponseStats.of(text) for text in texts)
        n = len(stats)
        tokens = [stat.tokens for stat in stats]
        # Every pair's LCS in one call: rapidfuzz converts each response's tokens once, not once per pair.
        lcs = process.cdist(tokens, tokens, scorer=LCSseq.similarity)
        similarity = np.ones((n, n, len(METRICS)))
        for i in range(n):
            for j in range(i + 1, n):
                similarity[i, j] = similarity[j, i] = _pair_metrics(stats[i], stats[j], int(lcs[i, j]))
        styles = np.array([[getattr(stat, style) for style in _STYLES] for stat in stats]).reshape(n, len(_STYLES))
        cjk = float(np.mean([stat.cjk_share for stat in stats])) if stats else 0.0
        return cls(stats, similarity, closed, styles, cjk)

    @property
    def size(self) -> int:
        return len(self.stats)


def _within(similarity: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """Mean similarity over the pairs inside each row's side, (splits, METRICS); NaN for one-sample sides."""
    size = sides.shape[1]
    if size < 2:
        return np.full((len(sides), similarity.shape[2]), np.nan)
    first, second = np.triu_indices(size, k=1)
    return similarity[sides[:, first], sides[:, second]].mean(axis=1)


def _nan_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise mean of the values that exist; NaN where neither does (one sample per side)."""
    present_a, present_b = ~np.isnan(a), ~np.isnan(b)
    counts = present_a.astype(float) + present_b
    totals = np.where(present_a, a, 0.0) + np.where(present_b, b, 0.0)
    return np.divide(totals, counts, out=np.full(a.shape, np.nan), where=counts > 0)


def split_features_batch(pool: PromptPool, references: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """FEATURE_NAMES rows, one per split: references (splits, m) and candidates (splits, k) index the pool.

    One numpy pass over every split of a prompt: the paired test scores dozens of splits per prompt.
    """
    references, candidates = np.asarray(references), np.asarray(candidates)
    similarity = pool.similarity
    cross = similarity[references[:, :, None], candidates[:, None, :]].mean(axis=(1, 2))
    within_ref, within_cand = _within(similarity, references), _within(similarity, candidates)
    within = _nan_mean(within_ref, within_cand)
    styles = pool.styles
    on_ref, on_cand = styles[references].mean(axis=1), styles[candidates].mean(axis=1)
    shift = on_cand - on_ref
    style_columns = np.stack([on_ref, on_cand, shift, np.abs(shift)], axis=2).reshape(len(references), -1)
    constants = np.broadcast_to([pool.cjk_share, float(pool.closed)], (len(references), 2))
    return np.hstack(
        [cross, within_ref, within_cand, cross - within, within_cand - within_ref, style_columns, constants]
    )


def split_features(pool: PromptPool, reference: Sequence[int], candidate: Sequence[int]) -> np.ndarray:
    """The FEATURE_NAMES row for one split of the pool into reference and candidate samples."""
    return split_features_batch(pool, np.asarray([list(reference)]), np.asarray([list(candidate)]))[0]


def observed_features(reference: Sequence[str], candidate: Sequence[str], closed: bool) -> np.ndarray:
    """Features of the split the stages actually produced: reference samples against candidate samples."""
    pool = PromptPool.of([*reference, *candidate], closed)
    return split_features(pool, range(len(reference)), range(len(reference), pool.size))
