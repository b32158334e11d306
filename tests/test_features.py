"""Pair features match the reference implementations and behave on text without spaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from simct_ci.features import (
    _BASE,
    _HASH_ONES,
    _KIND_PADDINGS,
    _PADDING,
    _UNIT_SCALE,
    BLEU_ORDER,
    CHRF_CHAR_ORDER,
    FEATURE_NAMES,
    METRICS,
    PromptPool,
    ResponseStats,
    _ngram_keys,
    observed_features,
    pair_similarities,
    split_features,
    split_features_batch,
    tokenize,
)

PAIRS = [
    (
        "A hash map stores key-value pairs and finds them in constant time on average.",
        "A hash map keeps pairs of keys and values, and looks them up in O(1) on average!",
    ),
    ("巴黎是法国的首都，也是最大的城市。", "法国的首都是巴黎。"),
    ("The answer is 42.", "I think the answer is 42, but let me check: 6 x 7 = 42."),
    ("Use `git rebase -i` to squash commits.", "Squash commits with an interactive rebase."),
]


class _SpaceTokenizer:
    """rouge-score drops non-ASCII text with its default tokenizer; feed it our tokens instead."""

    def tokenize(self, text: str) -> list[str]:
        return text.split(" ")


def _metric(values: np.ndarray, name: str) -> float:
    return float(values[METRICS.index(name)])


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_bleu_and_chrf_equal_sacrebleu_sentence_scores_in_both_directions(a: str, b: str) -> None:
    sa, sb = ResponseStats.of(a), ResponseStats.of(b)
    values = pair_similarities(sa, sb)
    ta, tb = " ".join(sa.tokens), " ".join(sb.tokens)
    bleu = (
        sacrebleu.sentence_bleu(ta, [tb], tokenize="none").score
        + sacrebleu.sentence_bleu(tb, [ta], tokenize="none").score
    ) / 200
    chrf = (sacrebleu.sentence_chrf(a, [b]).score + sacrebleu.sentence_chrf(b, [a]).score) / 200
    assert _metric(values, "bleu") == pytest.approx(bleu, abs=1e-9)
    assert _metric(values, "chrf") == pytest.approx(chrf, abs=1e-9)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_rouge_equals_google_rouge_score(a: str, b: str) -> None:
    sa, sb = ResponseStats.of(a), ResponseStats.of(b)
    values = pair_similarities(sa, sb)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_SpaceTokenizer())
    expected = scorer.score(" ".join(sa.tokens), " ".join(sb.tokens))
    for name in ("rouge1", "rouge2", "rougeL"):
        assert _metric(values, name) == pytest.approx(expected[name].fmeasure, abs=1e-9)


def test_chinese_is_tokenized_per_character_and_mixed_text_keeps_words() -> None:
    assert tokenize("巴黎是首都") == ["巴", "黎", "是", "首", "都"]
    assert tokenize("用 C++ 写hello_world函数。") == ["用", "C", "+", "+", "写", "hello_world", "函", "数", "。"]
    assert tokenize("Ünïcode wörds, too") == ["Ünïcode", "wörds", ",", "too"]


def test_tokenization_is_deterministic() -> None:
    text = "Deterministic: 同样的输入 gives the same tokens, every time."
    assert all(tokenize(text) == tokenize(text) for _ in range(5))


def test_tokens_with_the_same_bytes_in_different_widths_do_not_match() -> None:
    """CPython hashes "of" (two 1-byte characters) and "景" (one 2-byte character, U+666F) alike."""
    a, b = "of the", "景 the"
    values = pair_similarities(ResponseStats.of(a), ResponseStats.of(b))
    scorer = rouge_scorer.RougeScorer(["rouge1"], tokenizer=_SpaceTokenizer())
    assert _metric(values, "rouge1") == pytest.approx(scorer.score(a, b)["rouge1"].fmeasure, abs=1e-9)
    assert _metric(values, "rouge1") == 0.5


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("of the cat, in the hat", "of the cat, in the hat 😀"),  # ASCII tokens of an ASCII and a non-ASCII response
        ("the café is open", "the café is open, said the cafe"),  # Latin-1 (1-byte) characters too
        ("景 of the", "of the 景"),
    ],
)
def test_equal_tokens_match_whether_or_not_their_response_is_ascii(a: str, b: str) -> None:
    """An ASCII response's tokens get their units from the str hash, other responses' from their UTF-8 bytes."""
    sa, sb = ResponseStats.of(a), ResponseStats.of(b)
    values = pair_similarities(sa, sb)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2"], tokenizer=_SpaceTokenizer())
    expected = scorer.score(" ".join(sa.tokens), " ".join(sb.tokens))
    for name in ("rouge1", "rouge2"):
        assert _metric(values, name) == pytest.approx(expected[name].fmeasure, abs=1e-9)


@pytest.mark.parametrize(
    "text",
    ["", "one", "one two", "the cat the cat the cat", "a a a a", "巴黎 是 巴黎 是 巴黎", "x, x, x, y: x, x"],
)
def test_repetition_counts_distinct_bigrams_as_a_set_would(text: str) -> None:
    tokens = tokenize(text)
    bigrams = list(pairwise(tokens))
    expected = 1 - len(set(bigrams)) / len(bigrams) if bigrams else 0.0
    assert ResponseStats.of(text).repetition == expected


def _exact_metrics(pairs: list[tuple[str, str]]) -> list[list[str]]:
    """Every metric of every pair, as exact hex floats."""
    return [[v.hex() for v in pair_similarities(ResponseStats.of(a), ResponseStats.of(b)).tolist()] for a, b in pairs]


_SALT_SCRIPT = """
import json, sys
from tests.test_features import _exact_metrics
print(json.dumps(_exact_metrics(json.loads(sys.stdin.read()))))
"""


def test_metrics_do_not_depend_on_the_str_hash_salt() -> None:
    """Token keys come from Python's salted str hash; only their equality may matter, never their values."""
    pairs = [*PAIRS, ("of the 景", "景 of the"), ("a a a b", "a b a a b")]
    here = _exact_metrics(pairs)
    root = Path(__file__).resolve().parent.parent
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", _SALT_SCRIPT],
            input=json.dumps(pairs),
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=True,
        )
        assert json.loads(done.stdout) == here


def test_pair_metrics_are_symmetric_and_bounded() -> None:
    for a, b in PAIRS:
        ab = pair_similarities(ResponseStats.of(a), ResponseStats.of(b))
        ba = pair_similarities(ResponseStats.of(b), ResponseStats.of(a))
        np.testing.assert_allclose(ab, ba)
        assert np.all((ab >= 0) & (ab <= 1))
        assert _metric(ab, "exact_match") == 0.0


def test_identical_and_empty_responses() -> None:
    same = pair_similarities(ResponseStats.of("Paris."), ResponseStats.of("Paris."))
    assert np.all(same == 1.0)
    empty = pair_similarities(ResponseStats.of(""), ResponseStats.of("Paris is the capital."))
    assert np.all(np.isfinite(empty))
    assert _metric(empty, "rouge1") == 0.0


def test_split_features_name_every_column_and_mark_missing_within_similarity() -> None:
    k1 = observed_features(["The capital is Paris."], ["Paris."], closed=True)
    assert k1.shape == (len(FEATURE_NAMES),)
    within = [i for i, name in enumerate(FEATURE_NAMES) if name.startswith("within_")]
    assert np.all(np.isnan(k1[within]))
    assert k1[FEATURE_NAMES.index("closed_query")] == 1.0
    k3 = observed_features(["a b c", "a b d", "a c d"], ["x y z", "x y w", "x z w"], closed=False)
    assert not np.any(np.isnan(k3))
    assert k3[FEATURE_NAMES.index("cross_rouge1")] < k3[FEATURE_NAMES.index("within_ref_rouge1")]


def test_length_shift_is_signed() -> None:
    longer = observed_features(["short answer"], ["a much longer answer with many more words in it"], closed=False)
    assert longer[FEATURE_NAMES.index("log_len_shift")] > 0


def test_split_features_reuse_the_pool_for_any_split() -> None:
    pool = PromptPool.of(["one two", "one three", "four five", "four six"], closed=False)
    observed = split_features(pool, [0, 1], [2, 3])
    swapped = split_features(pool, [2, 3], [0, 1])
    cross = FEATURE_NAMES.index("cross_chrf")
    assert observed[cross] == pytest.approx(swapped[cross])
    assert observed[FEATURE_NAMES.index("log_len_shift")] == pytest.approx(0.0)


def test_prefix_similarity_measures_shared_openers() -> None:
    same_opener = pair_similarities(
        ResponseStats.of("To synthesize HCl, first gather the materials."),
        ResponseStats.of("To synthesize HCl, you need a chemistry lab."),
    )
    other_opener = pair_similarities(
        ResponseStats.of("1. Gather the materials to synthesize HCl."),
        ResponseStats.of("To synthesize HCl, you need a chemistry lab."),
    )
    assert _metric(same_opener, "prefix") == pytest.approx(4 / 8)
    assert _metric(other_opener, "prefix") == 0.0


def test_repetition_and_line_features_describe_style() -> None:
    looping = ResponseStats.of("the cat the cat the cat the cat")
    varied = ResponseStats.of("the cat sat on the mat today")
    assert looping.repetition == pytest.approx(1 - 2 / 7)  # 7 bigrams, 2 distinct: (the, cat), (cat, the)
    assert varied.repetition == 0.0
    assert ResponseStats.of("one\ntwo\nthree").log_lines == pytest.approx(np.log1p(2))
    row = observed_features(["the cat sat on the mat"] * 2, ["the cat the cat the cat the cat"] * 2, closed=False)
    assert row[FEATURE_NAMES.index("repetition_shift")] > 0
    assert row[FEATURE_NAMES.index("repetition_abs_shift")] == pytest.approx(
        row[FEATURE_NAMES.index("repetition_shift")]
    )


def test_batched_split_features_equal_one_split_at_a_time() -> None:
    texts = ["one two three", "one two four", "five six", "one seven", "two three four five", "six"]
    pool = PromptPool.of(texts, closed=False)
    references = np.array([[0, 1], [2, 3], [4, 4], [5, 0]])
    candidates = np.array([[2, 3], [0, 1], [1, 5], [3, 2]])
    batch = split_features_batch(pool, references, candidates)
    for row, ref, cand in zip(batch, references, candidates, strict=True):
        np.testing.assert_array_equal(row, split_features(pool, list(ref), list(cand)))


def test_tokens_cover_every_character_but_whitespace_once_in_order() -> None:
    """ResponseStats joins the tokens for chrF's characters: that must be "".join(text.split()), for any character."""
    every = "".join(chr(code) for code in range(0x110000))
    for text in (every, " ".join(every), "".join(f"a{c}_" for c in every)):
        assert "".join(tokenize(text)) == "".join(text.split())


def _rolling_hash_keys(text: str) -> list[int]:
    """The n-gram keys as first defined, one n-gram at a time: kind in the top 4 bits, the hash's top 60 below."""
    modulus, base, scale = 2**64, int(_BASE), int(_UNIT_SCALE)
    tokens = tokenize(text)
    words = [hash(token.encode()) % modulus for token in tokens]
    chars = [ord(char) for char in "".join(text.split())]
    keys = []
    for first_kind, units, orders in ((0, words, BLEU_ORDER), (1, chars, CHRF_CHAR_ORDER)):
        for k in range(orders):
            for i in range(len(units) - k):
                value = 0
                for unit in units[i : i + k + 1]:
                    value = (value * base + unit * scale) % modulus
                keys.append((2 * k + first_kind) << 60 | value >> 4)
    return sorted(keys)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \n",
        "Paris",
        "a b",
        "The cat sat on the mat. The cat sat!",
        "巴黎是法国的首都，也是最大的城市。",
        "😀😀 👍🏽 of 景 the",
        "x" * 4095,  # one token and 4,095 characters: as wide as the smallest tables
        "x" * 4096,  # one unit wider: the next tables
        " ".join(f"w{i % 331}" for i in range(4000)),  # over 16,384 units: tables built for this text, not kept
    ],
)
def test_ngram_keys_are_the_rolling_hash_of_every_ngram(text: str) -> None:
    """The prefix-sum computation gives every n-gram its rolling-hash key; the rest is padding, and one sentinel."""
    tokens = tuple(tokenize(text))
    keys = _ngram_keys(tokens, "".join(tokens))
    width = len(tokens) + len("".join(tokens))
    assert len(keys) == 6 * width + 1 and np.all(keys[:-1] <= keys[1:])
    padding = (keys & _HASH_ONES) == _HASH_ONES
    assert keys[-1] == _PADDING and set(keys[padding].tolist()) <= set(_KIND_PADDINGS.tolist())
    assert keys[~padding].tolist() == _rolling_hash_keys(text)


def test_pool_similarities_equal_those_of_each_pair() -> None:
    texts = [*PAIRS[0], *PAIRS[1], "", PAIRS[0][0]]
    pool = PromptPool.of(texts, closed=False)
    for i, a in enumerate(pool.stats):
        for j, b in enumerate(pool.stats):
            expected = pair_similarities(a, b) if i != j else np.ones(len(METRICS))
            np.testing.assert_array_equal(pool.similarity[i, j], expected)
