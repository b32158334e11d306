"""Promise: on any pair of texts (ASCII, Chinese, emoji, whitespace only, empty, repeated n-grams), the pair
metrics equal sacrebleu's sentence BLEU and chrF and Google's rouge-score, whatever the n-gram bookkeeping does
to get there."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF

from simct_ci.features import (
    _KIND_BITS,
    _UNIT_SCALE,
    BLEU_ORDER,
    CHRF_CHAR_ORDER,
    METRICS,
    ResponseStats,
    _chrf_score,
    _sentence_bleu,
    _totals,
    pair_similarities,
    tokenize,
)

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CHINESE = "巴黎是法国的首都也最大城市，。？！「」"
EMOJI = ["😀", "🎉", "👍🏽", "❤️", "👩‍💻", "🇫🇷"]  # with a skin tone, a variation selector, a ZWJ sequence, a flag
# Space, tab, newline, ideographic space, no-break space and \x1c, which str.split() counts as whitespace.
WHITESPACE = " \t\n\u3000\xa0\x1c"

ascii_text = st.text(alphabet=st.characters(max_codepoint=127), max_size=60)
chinese_text = st.text(alphabet=st.sampled_from(CHINESE + " "), max_size=30)
emoji_text = st.lists(st.sampled_from([*EMOJI, " ", "a", "。"]), max_size=12).map("".join)
whitespace_only = st.text(alphabet=st.sampled_from(WHITESPACE), max_size=6)
# Few distinct words, many repeats: counts above 1 on both sides are where clipping matters.
repeated_ngrams = st.lists(st.sampled_from(["ab", "ab", "c", "巴黎", "😀", "of", "景", ",", "ab c"]), max_size=25).map(
    " ".join
)
any_text = st.text(max_size=40)
TEXTS = ascii_text | chinese_text | emoji_text | whitespace_only | st.just("") | repeated_ngrams | any_text


@st.composite
def text_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """Unrelated texts, or a text and an edit of it (which share most of their n-grams)."""
    a = draw(TEXTS)
    if draw(st.booleans()):
        return a, draw(TEXTS)
    cut = draw(st.integers(0, len(a)))
    edit = draw(st.sampled_from(["insert", "delete", "repeat"]))
    if edit == "insert":
        return a, a[:cut] + draw(TEXTS) + a[cut:]
    if edit == "delete":
        return a, a[:cut] + a[cut + draw(st.integers(0, 10)) :]
    return a, a[:cut] * 2 + a[cut:]


class _SpaceTokenizer:
    """rouge-score drops non-ASCII text with its default tokenizer; feed it our tokens instead."""

    def tokenize(self, text: str) -> list[str]:
        return text.split(" ")


ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_SpaceTokenizer())


def reference_metrics(a: str, b: str) -> dict[str, float]:
    """The metrics as the reference packages compute them, averaged over both directions where asymmetric."""
    ta, tb = " ".join(tokenize(a)), " ".join(tokenize(b))
    bleu = (
        sacrebleu.sentence_bleu(ta, [tb], tokenize="none").score
        + sacrebleu.sentence_bleu(tb, [ta], tokenize="none").score
    )
    chrf = sacrebleu.sentence_chrf(a, [b]).score + sacrebleu.sentence_chrf(b, [a]).score
    rouge = ROUGE.score(ta, tb)
    return {"bleu": bleu / 200, "chrf": chrf / 200, **{name: score.fmeasure for name, score in rouge.items()}}


@PROPERTY_SETTINGS
@given(pair=text_pairs())
@example(pair=("of", "景"))  # CPython gives these the same str hash: same bytes, different character widths
@example(pair=("of the", "景 the"))
@example(pair=("", " \n\t"))
@example(pair=("a\x1cb", "a b"))
@example(pair=("😀😀😀 👍🏽", "😀😀 👍"))
@example(pair=("ab ab ab ab ab", "ab ab c ab"))
@example(pair=("巴黎是法国的首都，也是最大的城市。", "法国的首都是巴黎。"))
@example(pair=("".join(map(chr, range(128))), "The answer is 42."))
def test_pair_metrics_equal_sacrebleu_and_rouge_score(pair: tuple[str, str]) -> None:
    a, b = pair
    values = dict(zip(METRICS, pair_similarities(ResponseStats.of(a), ResponseStats.of(b)).tolist(), strict=True))
    if a == b:
        assert all(value == 1.0 for value in values.values())
        return
    expected = reference_metrics(a, b)
    if len(tokenize(a)) < 2 and len(tokenize(b)) < 2:
        # Neither side has a bigram: rouge-score says 0, the feature set (v1, which the bundled model was
        # trained on) has always said 1, as for every metric of two empty sides. Kept, and pinned here.
        assert values.pop("rouge2") == 1.0
        expected.pop("rouge2")
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, abs=1e-9), name


@PROPERTY_SETTINGS
@given(pair=text_pairs())
def test_pair_metrics_are_symmetric_and_bounded(pair: tuple[str, str]) -> None:
    a, b = (ResponseStats.of(text) for text in pair)
    ab, ba = pair_similarities(a, b), pair_similarities(b, a)
    np.testing.assert_array_equal(ab, ba)
    # Up to rounding: sacrebleu's BLEU of two equal token sequences can come out at 100.00000000000004.
    assert np.all((ab >= 0) & (ab <= 1 + 1e-12))


def test_keys_of_single_characters_never_collide() -> None:
    """Character unigram keys keep the top 60 bits of code point times an odd constant: distinct for all of Unicode,
    so chrF's order-1 matches are exact, not merely exact but for chance."""
    code_points = np.arange(0x110000, dtype=np.uint64)
    hashes = (code_points * _UNIT_SCALE) >> _KIND_BITS
    assert len(np.unique(hashes)) == len(code_points)


@st.composite
def ngram_statistics(draw: st.DrawFn, max_order: int) -> tuple[list[int], tuple[int, ...], tuple[int, ...]]:
    """Clipped matches per order for two sequences of drawn lengths, as the n-gram bookkeeping counts them."""
    totals_a = _totals(draw(st.integers(0, 300)), max_order)
    totals_b = _totals(draw(st.integers(0, 300)), max_order)
    matches = [draw(st.integers(0, min(a, b))) for a, b in zip(totals_a, totals_b, strict=True)]
    return matches, totals_a, totals_b


@PROPERTY_SETTINGS
@given(stats=ngram_statistics(BLEU_ORDER))
@example(stats=([0, 0, 0, 0], (3, 2, 1, 0), (5, 4, 3, 2)))
@example(stats=([1, 0, 0, 0], (1, 0, 0, 0), (9, 8, 7, 6)))
@example(stats=([4, 0, 2, 0], (9, 8, 7, 6), (4, 3, 2, 1)))
def test_sentence_bleu_is_sacrebleus_compute_bleu_to_the_last_bit(
    stats: tuple[list[int], tuple[int, ...], tuple[int, ...]],
) -> None:
    """The transcription of BLEU.compute_bleu (exp smoothing, effective order) gives the very same float."""
    matches, hyp_totals, ref_totals = stats
    hyp_len, ref_len = hyp_totals[0], ref_totals[0]
    expected = BLEU.compute_bleu(list(matches), list(hyp_totals), hyp_len, ref_len, "exp", effective_order=True)
    assert _sentence_bleu(matches, hyp_totals, hyp_len, ref_len) == expected.score


@PROPERTY_SETTINGS
@given(stats=ngram_statistics(CHRF_CHAR_ORDER))
@example(stats=([0] * 6, (0,) * 6, (0,) * 6))
@example(stats=([0] * 6, (2, 1, 0, 0, 0, 0), (7, 6, 5, 4, 3, 2)))
def test_chrf_is_sacrebleus_f_score_to_the_last_bit(stats: tuple[list[int], tuple[int, ...], tuple[int, ...]]) -> None:
    """The transcription of CHRF._compute_f_score, both directions averaged, gives the very same float."""
    matches, totals_a, totals_b = stats
    chrf = CHRF(char_order=CHRF_CHAR_ORDER, word_order=0)
    # sacrebleu's statistics per order: [hypothesis n-grams, or 0 if the reference has none; reference n-grams; matches]
    forward = [x for m, a, b in zip(matches, totals_a, totals_b, strict=True) for x in (a if b else 0, b, m)]
    backward = [x for m, a, b in zip(matches, totals_a, totals_b, strict=True) for x in (b if a else 0, a, m)]
    expected = (chrf._compute_f_score(forward) + chrf._compute_f_score(backward)) / 200.0
    assert _chrf_score(matches, totals_a, totals_b) == expected
