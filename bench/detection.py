"""Detection benchmark (issue 6): how often each test catches each kind of real change, and how often it cries wolf.

Run: pip install -r requirements-bench.txt && python bench/detection.py   (about 22 minutes on 2 busy cores)
     python bench/detection.py --quick                                     (smoke run, a few minutes)
     python bench/detection.py --render        (docs/detection.md and the plot again from the saved results)
Writes bench/results/detection.json, docs/detection.md and docs/pictures/detection-power.png.

Everything runs on the dataset's eval prompts (never trained on) of real llama.cpp deployments. Per prompt, a
few random draws of (reference 2k samples, candidate k samples) are fixed for each condition (a kind of change,
or a same-deployment rerun); an experiment picks n prompts and one draw per prompt, and every test decides on
exactly those responses:
- SimCT default: compare.py's paired statistics (classifier, length, diversity) decided by the product's own
  compare.model_wise, and SimCT without diversity, the default before; each change is scored by a
  leave-one-change-out model, as in bench/engine.py, the rerun by the bundled model;
- single-metric baselines: one-sided paired t-tests of within-reference minus cross-stage similarity;
- MMD (Gao, Liang, Guestrin, ICLR 2025, package model-equality-testing) with its character Hamming and
  k-spectrum kernels, permutation p-values. Each prompt's kernel matrix is computed once and every draw and
  permutation is scored by indexing it; the benchmark checks that this equals the package's own statistic.
The sequential mode (look after each quarter of the planned prompts, O'Brien-Fleming spending) is measured too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import environment
from simct_ci import mmd
from simct_ci.compare import (
    CLASSIFIER,
    DIVERSITY,
    DIVERSITY_SHARE,
    LENGTH,
    GateSettings,
    concentration,
    model_wise,
)
from simct_ci.features import FEATURE_NAMES, PromptPool, split_features_batch
from simct_ci.model import BundledModel
from simct_ci.sequential import OBRIEN_FLEMING, nominal_alphas
from simct_ci.stats import INCONSISTENT, PAIRED_T, combined_t_test, t_test_greater
from simct_ci.training.dataset import ALL_CHANGES, PromptResponses, build_rows, load_prompts
from simct_ci.training.deployments import CHANGES, REFERENCE
from simct_ci.training.train import fit

ALPHA = 0.05
PROMPT_COUNTS = (10, 20, 50, 100)
SAMPLE_COUNTS = (1, 3, 5)
PLOT_SAMPLES = 3
RERUN = "rerun"  # the same deployment queried again: the false-positive condition
CONDITIONS = (RERUN, *ALL_CHANGES)
SEVERITY = {c.change: c.severity for c in CHANGES}

BASELINE_METRICS = ("chrf", "bleu", "rougeL", "edit_sim", "length_ratio")
LENGTH_METRIC = "length_ratio"  # SimCT's length component is this metric's paired statistic
SIMCT, SIMCT_SHIFT, SIMCT_CLASSIFIER = "SimCT default", "SimCT without diversity", "SimCT classifier only"
# compare.py's component -> its statistic here; the first two are summed (the shift test), diversity is two-sided
COMPONENTS = {CLASSIFIER: "classifier", LENGTH: LENGTH_METRIC, DIVERSITY: DIVERSITY}
SHIFT_COMPONENTS = (CLASSIFIER, LENGTH)
MMD_KERNELS = ("Hamming", "5-spectrum")
MMD_TESTS = tuple(f"MMD {kernel}" for kernel in MMD_KERNELS)
TESTS = (SIMCT, SIMCT_SHIFT, SIMCT_CLASSIFIER, *BASELINE_METRICS, *MMD_TESTS)
SEQUENTIAL_TESTS = (SIMCT,)

RERUN_SPLITS = 84  # rerun draws per prompt: 28 sets of 3 samples at k = 1, one of 9 at k = 3 (and 3,003 at k = 5)
PAIR_CHUNK = 50_000  # feature rows per batch: k = 5 has 756,756 ordered pairs of disjoint sets per prompt
COMPARE_MAX_CHOICES = 256  # compare.py takes every (A, B, C) choice up to this many; m = k stays below it

SEQUENTIAL_PLANS = (20, 50, 100)
LOOK_FRACTIONS = (0.25, 0.5, 0.75, 1.0)
SEQUENTIAL_SAMPLES = 3

RESULTS = Path("bench/results/detection.json")
DOC = Path("docs/detection.md")
PLOT = Path("docs/pictures/detection-power.png")
COMMAND = "python bench/detection.py"

Scorer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Settings:
    reps: int  # experiments per cell for the t-tests (and the sequential mode)
    mmd_reps: int  # the first mmd_reps of those experiments also run the MMD tests (permutations are costly)
    permutations: int
    draws: int  # random (reference, candidate) draws fixed per prompt for each change (reruns: see rerun_statistics)
    package_checks: int  # draws on which the fast MMD path is compared with the package, per k and condition
    min_qualified: int  # fewer qualifying prompts than this: that k is not measured at all
    seed: int


FULL = Settings(reps=600, mmd_reps=400, permutations=200, draws=16, package_checks=3, min_qualified=10, seed=0)
QUICK = Settings(reps=20, mmd_reps=10, permutations=50, draws=3, package_checks=1, min_qualified=2, seed=0)


# ---------------------------------------------------------------------------------------------------------------
# Prompts: every response of a prompt in one pool, and the MMD kernels over it
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalPrompt:
    """One eval prompt's sampled responses pooled (reference first), their similarities and MMD kernel matrices."""

    prompt: PromptResponses
    texts: tuple[str, ...]
    index: dict[str, np.ndarray]  # deployment -> its responses' positions in the pool
    pool: PromptPool
    kernels: dict[str, np.ndarray]  # MMD kernel name -> (N, N) normalised kernel matrix over the pool

    @classmethod
    def of(cls, prompt: PromptResponses) -> EvalPrompt:
        texts: list[str] = []
        index: dict[str, np.ndarray] = {}
        for name in (REFERENCE, *ALL_CHANGES):
            index[name] = np.arange(len(texts), len(texts) + len(prompt.responses[name]))
            texts.extend(prompt.responses[name])
        codes = mmd.char_codes(texts)
        kernels = {
            "Hamming": mmd.normalised(hamming_kernel(codes)),
            "5-spectrum": mmd.normalised(mmd.spectrum_kernel(codes)),
        }
        return cls(prompt, tuple(texts), index, PromptPool.of(texts, prompt.closed), kernels)


def qualifies(prompt: PromptResponses, k: int) -> bool:
    """k samples need 3k reference samples (the rerun: 2k reference + k candidate) and k of every change."""
    return len(prompt.responses[REFERENCE]) >= 3 * k and all(len(prompt.responses[c]) >= k for c in ALL_CHANGES)


def hamming_kernel(codes: np.ndarray) -> np.ndarray:
    """The package's Hamming kernel: positions where two sequences agree (padding included)."""
    return (codes[:, None, :] == codes[None, :, :]).sum(axis=2).astype(float)


# ---------------------------------------------------------------------------------------------------------------
# Draws and the per-draw inputs of every test
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """Every test's input for one condition at k samples, per qualifying prompt (rows) and draw (columns)."""

    k: int
    draws: np.ndarray  # (prompts, draws, 3k) pool positions: the reference's 2k samples, then the candidate's k
    paired: dict[str, np.ndarray]  # "classifier" and each metric -> (prompts, draws) paired statistics
    grams: dict[str, np.ndarray]  # MMD kernel -> (prompts, draws, 3k, 3k) among the draw's responses, zero diagonal


def change_draws(prompt: EvalPrompt, change: str, k: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3k) pool positions: 2k random reference samples, then k random samples of the change."""
    draws = np.empty((count, 3 * k), dtype=np.int64)
    for row in draws:
        row[: 2 * k] = rng.choice(prompt.index[REFERENCE], 2 * k, replace=False)
        row[2 * k :] = rng.choice(prompt.index[change], k, replace=False)
    return draws


@dataclass(frozen=True)
class SplitDesign:
    """Every split of 3k samples into a 2k reference and a k candidate, with compare.py's (A, B, C) choices for each
    expressed as indices into one list of ordered pairs (A, X) of disjoint k-sets, so each pair is scored once."""

    pairs: np.ndarray  # (pairs, 2, k) positions of A and X within the 3k samples
    splits: np.ndarray  # (splits, 3k) positions: the reference's 2k, then the candidate's k
    cross: np.ndarray  # (splits, choices) index of the pair (A, C) of each choice
    same: np.ndarray  # (splits, choices) index of the pair (A, B)


@cache
def split_design(k: int) -> SplitDesign:
    size = 3 * k
    subsets = np.array(list(itertools.combinations(range(size), k)))
    masks = (1 << subsets).sum(axis=1)
    index_of = np.full(1 << size, -1)
    index_of[masks] = np.arange(len(masks))
    disjoint = (masks[:, None] & masks[None, :]) == 0
    first, second = np.nonzero(disjoint)  # row-major: pair keys first * len + second come out sorted
    keys = first * len(masks) + second
    full = (1 << size) - 1
    splits, cross, same = [], [], []
    for candidate, mask in enumerate(masks):
        anchors = np.nonzero(disjoint[candidate])[0]  # every k-subset A of the reference
        held_back = index_of[full ^ mask ^ masks[anchors]]  # B: the rest of the reference
        reference = [i for i in range(size) if not (mask >> i) & 1]
        splits.append([*reference, *subsets[candidate]])
        cross.append(np.searchsorted(keys, anchors * len(masks) + candidate))
        same.append(np.searchsorted(keys, anchors * len(masks) + held_back))
    pairs = np.stack([subsets[first], subsets[second]], axis=1)
    return SplitDesign(pairs, np.array(splits), np.array(cross), np.array(same))


def rerun_statistics(prompt: EvalPrompt, k: int, scorer: Scorer, rng) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Same-deployment draws, 3k distinct reference samples split 2k / k: every split of random sets of 3k samples
    (as many sets as make RERUN_SPLITS draws, at least one), with their paired statistics.

    Over every split of one set each prompt's paired statistics sum to exactly zero ((A, C) and (A, B) run over the
    same ordered pairs of disjoint sets), and an experiment's split is uniform over all of them, as a permutation
    test assumes. Random splits would not do: an experiment that resamples a prompt many times (n above the
    qualifying prompts) would carry the chance offset of that prompt's few splits into every test.
    """
    design = split_design(k)
    sets = max(1, RERUN_SPLITS // len(design.splits))
    draws, statistics = [], []
    for _ in range(sets):
        chosen = rng.choice(prompt.index[REFERENCE], 3 * k, replace=False)
        scores, similarity, alike = [], [], []
        for start in range(0, len(design.pairs), PAIR_CHUNK):
            pairs = chosen[design.pairs[start : start + PAIR_CHUNK]]
            features = split_features_batch(prompt.pool, pairs[:, 0], pairs[:, 1])
            scores.append(scorer(features))
            similarity.append(features[:, [FEATURE_NAMES.index(f"cross_{m}") for m in BASELINE_METRICS]])
            alike.append(concentration(features))
        score, similar, diversity = np.concatenate(scores), np.vstack(similarity), np.concatenate(alike)
        paired = {
            "classifier": (score[design.cross] - score[design.same]).mean(axis=1),
            DIVERSITY: (diversity[design.cross] - diversity[design.same]).mean(axis=1),
        }
        for column, metric in enumerate(BASELINE_METRICS):
            paired[metric] = (similar[design.same, column] - similar[design.cross, column]).mean(axis=1)
        draws.append(chosen[design.splits])
        statistics.append(paired)
    merged = {name: np.concatenate([part[name] for part in statistics]) for name in statistics[0]}
    if any(abs(values.mean()) > 1e-9 for values in merged.values()):
        raise RuntimeError(f"{prompt.prompt.id}: same-deployment statistics do not average to zero over all splits")
    return np.concatenate(draws), merged


def choice_positions(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """compare.py's (anchor A, held-back B, candidate C) choices, as positions within a draw (reference first).

    With sets of m = k, a 2k reference and a k candidate there are C(2k, k) <= 252 choices, so compare.py takes
    all of them, and so does this.
    """
    reference, candidate = range(2 * k), range(2 * k, 3 * k)
    choices = [
        (a, b, c)
        for a in itertools.combinations(reference, k)
        for b in itertools.combinations([i for i in reference if i not in a], k)
        for c in itertools.combinations(candidate, k)
    ]
    if len(choices) > COMPARE_MAX_CHOICES:
        raise ValueError(f"{len(choices)} choices at k={k}: compare.py would subsample them, this would not")
    anchors, held_back, drawn = (np.array(side) for side in zip(*choices, strict=True))
    return anchors, held_back, drawn


def paired_statistics(prompts: Sequence[EvalPrompt], draws: np.ndarray, k: int, scorer: Scorer) -> dict:
    """Per prompt and draw: classifier score(A, C) - score(A, B) and, per metric, sim(A, B) - sim(A, C),
    each averaged over every (A, B, C) choice. One model call per prompt scores all of its draws' rows."""
    anchors, held_back, drawn = choice_positions(k)
    per_prompt: list[dict[str, np.ndarray]] = []
    for prompt, prompt_draws in zip(prompts, draws, strict=True):
        anchor_sets = prompt_draws[:, anchors].reshape(-1, k)
        cross = split_features_batch(prompt.pool, anchor_sets, prompt_draws[:, drawn].reshape(-1, k))
        same = split_features_batch(prompt.pool, anchor_sets, prompt_draws[:, held_back].reshape(-1, k))
        scores = scorer(np.vstack([cross, same]))
        shape = (len(prompt_draws), len(anchors))
        statistics = {"classifier": (scores[: len(cross)] - scores[len(cross) :]).reshape(shape).mean(axis=1)}
        for metric in BASELINE_METRICS:
            column = FEATURE_NAMES.index(f"cross_{metric}")
            statistics[metric] = (same[:, column] - cross[:, column]).reshape(shape).mean(axis=1)
        statistics[DIVERSITY] = (concentration(cross) - concentration(same)).reshape(shape).mean(axis=1)
        per_prompt.append(statistics)
    return {name: np.stack([statistics[name] for statistics in per_prompt]) for name in per_prompt[0]}


def draw_grams(prompts: Sequence[EvalPrompt], draws: np.ndarray, kernel: str) -> np.ndarray:
    """Each draw's kernel matrix among its own responses, gathered from the prompt's; self-pairs zeroed."""
    grams = np.stack(
        [prompt.kernels[kernel][d[:, :, None], d[:, None, :]] for prompt, d in zip(prompts, draws, strict=True)]
    )
    size = draws.shape[2]
    grams[..., np.arange(size), np.arange(size)] = 0.0
    return grams


def build_cell(prompts: Sequence[EvalPrompt], condition: str, k: int, scorer: Scorer, settings: Settings, rng) -> Cell:
    if condition == RERUN:
        per_prompt = [rerun_statistics(p, k, scorer, rng) for p in prompts]
        draws = np.stack([prompt_draws for prompt_draws, _ in per_prompt])
        paired = {name: np.stack([values[name] for _, values in per_prompt]) for name in per_prompt[0][1]}
    else:
        draws = np.stack([change_draws(p, condition, k, settings.draws, rng) for p in prompts])
        paired = paired_statistics(prompts, draws, k, scorer)
    return Cell(k, draws, paired, {kernel: draw_grams(prompts, draws, kernel) for kernel in MMD_KERNELS})


# ---------------------------------------------------------------------------------------------------------------
# MMD: the product's test (simct_ci/mmd.py) on each draw's slice of the precomputed kernel matrices
# ---------------------------------------------------------------------------------------------------------------


def observed_labels(n: int, k: int) -> np.ndarray:
    """The candidate indicator of every draw: positions 2k..3k-1 of each prompt's (3k, 3k) kernel matrix."""
    labels = np.zeros((n, 3 * k), dtype=bool)
    labels[:, 2 * k :] = True
    return labels


def mmd_p_value(grams: np.ndarray, k: int, permutations: int, rng: np.random.Generator) -> float:
    """The product's permutation test (simct_ci/mmd.py), labels permuted within each prompt."""
    labels = observed_labels(len(grams), k)
    return mmd.permutation_test(grams, labels, np.ones_like(labels), permutations, rng).p_value


def check_against_package(prompts: Sequence[EvalPrompt], cell: Cell, checks: int, rng) -> list[dict]:
    """Recompute the MMD statistic of a few draws, as observed and permuted within prompts, with the package's
    own mmd_hamming and mmd_kspectrum.

    Raises if the fast path disagrees: every MMD figure of the benchmark rests on it.
    """
    from model_equality_testing.distribution import CompletionSample
    from model_equality_testing.tests import mmd_hamming, mmd_kspectrum
    from model_equality_testing.utils import pad_to_length, tokenize_unicode

    def package_codes(texts: list[str]) -> np.ndarray:
        codes = tokenize_unicode(texts).astype(np.int64)[:, : mmd.MMD_LENGTH]  # float32 when a text is empty: exact
        return pad_to_length(codes, mmd.MMD_LENGTH, mmd.PAD)

    package = {
        "Hamming": mmd_hamming,
        "5-spectrum": lambda x, y: mmd_kspectrum(x, y, k=mmd.SPECTRUM_ORDER, cumulative=True),
    }
    k, slots = cell.k, min(4, len(prompts))
    checked = []
    for _ in range(checks):
        rows = rng.choice(len(prompts), slots, replace=False)
        draws = rng.integers(cell.draws.shape[1], size=slots)
        observed = observed_labels(slots, k)
        permuted = mmd.permuted_labels(observed, np.ones_like(observed), 1, rng)[0]
        texts = [[prompts[r].texts[i] for i in cell.draws[r, d]] for r, d in zip(rows, draws, strict=True)]
        for name, labels in (("observed", observed), ("permuted", permuted)):
            pairs = [(text, y) for slot, z in zip(texts, labels, strict=True) for text, y in zip(slot, z, strict=True)]
            reference = [text for text, y in pairs if not y]
            candidate = [text for text, y in pairs if y]
            if not np.array_equal(package_codes(reference + candidate), mmd.char_codes(reference + candidate)):
                raise RuntimeError("character codes differ from the package's tokenize_unicode")
            x = CompletionSample(np.repeat(np.arange(slots), 2 * k), package_codes(reference), slots)
            y = CompletionSample(np.repeat(np.arange(slots), k), package_codes(candidate), slots)
            for kernel, statistic in package.items():
                with np.errstate(invalid="ignore", divide="ignore"):
                    expected = float(statistic(x, y))
                grams = cell.grams[kernel][rows, draws]
                ours = float(mmd.mmd_statistics(grams, labels[None], np.ones_like(labels))[0])
                agrees = math.isnan(expected) if k == 1 else bool(np.isclose(ours, expected, rtol=1e-9, atol=1e-12))
                if not agrees:
                    raise RuntimeError(f"fast MMD {kernel} at k={k}: {ours!r} but the package says {expected!r}")
                checked.append(
                    {
                        "k": k,
                        "prompts": slots,
                        "labels": name,
                        "kernel": kernel,
                        "fast": ours,
                        "package": _finite_or_none(expected),
                    }
                )
    return checked


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------------------------
# Experiments
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """`reps` experiments of n prompts: the cell row (prompt) and draw of each slot."""

    rows: np.ndarray  # (reps, n)
    draws: np.ndarray  # (reps, n)
    resampled: bool  # n exceeds the qualifying prompts: drawn with replacement


def plan(available: int, n: int, reps: int, draws: int, rng: np.random.Generator) -> Plan:
    resampled = n > available
    if resampled:
        rows = rng.integers(available, size=(reps, n))
    else:
        rows = np.stack([rng.choice(available, n, replace=False) for _ in range(reps)])
    return Plan(rows, rng.integers(draws, size=(reps, n)), resampled)


def rejects(result) -> bool:
    return result.verdict == INCONSISTENT


def simct_default(
    values: Mapping[str, np.ndarray], scales: Mapping[str, float], fractions: tuple[float, ...] = ()
) -> bool:
    """The product's model-wise test itself (compare.model_wise): the combined one-sided test of the classifier and
    length components, each over its same-deployment spread from the model card, joined by the two-sided diversity
    test; `fractions`: the sequential looks so far, with O'Brien-Fleming spending."""
    components = {name: values[statistic] for name, statistic in COMPONENTS.items()}
    weights = {name: 1.0 / scales[name] for name in SHIFT_COMPONENTS}
    settings = GateSettings(alpha=ALPHA, min_prompts=2, look_fractions=fractions, spending=OBRIEN_FLEMING)
    return rejects(model_wise(components, weights, PAIRED_T, settings))


def simct_shift(values: Mapping[str, np.ndarray], scales: Mapping[str, float]) -> bool:
    """The default before the diversity test joined it: the combined one-sided test alone, at the whole alpha."""
    components = {name: values[COMPONENTS[name]] for name in SHIFT_COMPONENTS}
    weights = {name: 1.0 / scales[name] for name in SHIFT_COMPONENTS}
    return rejects(combined_t_test(components, weights, ALPHA, PAIRED_T, 2))


def t_test_decisions(values: Mapping[str, np.ndarray], scales: Mapping[str, float]) -> dict[str, bool]:
    decisions = {
        SIMCT: simct_default(values, scales),
        SIMCT_SHIFT: simct_shift(values, scales),
        SIMCT_CLASSIFIER: rejects(t_test_greater(values["classifier"], ALPHA, PAIRED_T, 2)),
    }
    for metric in BASELINE_METRICS:
        decisions[metric] = rejects(t_test_greater(values[metric], ALPHA, PAIRED_T, 2))
    return decisions


def rejection_rates(
    cell: Cell, experiments: Plan, settings: Settings, scales: Mapping[str, float], rng: np.random.Generator
) -> dict[str, float]:
    """Share of experiments each test rejects; MMD on the first mmd_reps experiments only."""
    hits = dict.fromkeys(TESTS, 0)
    for rep, (rows, draws) in enumerate(zip(experiments.rows, experiments.draws, strict=True)):
        values = {name: statistic[rows, draws] for name, statistic in cell.paired.items()}
        for test, rejected in t_test_decisions(values, scales).items():
            hits[test] += rejected
        if rep < settings.mmd_reps:
            for kernel, test in zip(MMD_KERNELS, MMD_TESTS, strict=True):
                hits[test] += mmd_p_value(cell.grams[kernel][rows, draws], cell.k, settings.permutations, rng) < ALPHA
    reps = len(experiments.rows)
    return {test: hits[test] / (min(reps, settings.mmd_reps) if test in MMD_TESTS else reps) for test in TESTS}


def look_sizes(planned: int) -> tuple[int, ...]:
    return tuple(max(2, math.ceil(fraction * planned - 1e-9)) for fraction in LOOK_FRACTIONS)


def sequential_design(cell: Cell, experiments: Plan, planned: int, test: str, scales: Mapping[str, float]) -> dict:
    """`test` after each quarter of the planned prompts (stop at the first rejection) vs once at the end.

    Looks spend each share of alpha (the shift test's and the diversity test's) with O'Brien-Fleming, as compare.py
    does. "Consistent" is only decided once every planned prompt is in.
    """
    if test != SIMCT:
        raise ValueError(f"no sequential design for {test}")
    looks = look_sizes(planned)
    fractions = tuple(size / planned for size in looks)
    nominals = nominal_alphas(ALPHA * (1 - DIVERSITY_SHARE), fractions, OBRIEN_FLEMING)

    def rejected(values: Mapping[str, np.ndarray], looked: tuple[float, ...]) -> bool:
        return simct_default(values, scales, looked)

    fixed_hits = sequential_hits = 0
    queried = []
    for rows, draws in zip(experiments.rows, experiments.draws, strict=True):
        values = {name: cell.paired[name][rows, draws] for name in COMPONENTS.values()}
        fixed_hits += rejected(values, ())
        stopped = next(
            (
                size
                for look, size in enumerate(looks)
                if rejected({name: column[:size] for name, column in values.items()}, fractions[: look + 1])
            ),
            None,
        )
        sequential_hits += stopped is not None
        queried.append(planned if stopped is None else stopped)
    reps = len(experiments.rows)
    mean_queried = float(np.mean(queried))
    return {
        "fixed": fixed_hits / reps,
        "sequential": sequential_hits / reps,
        "mean_prompts": mean_queried,
        "saving": 1 - mean_queried / planned,
        "looks": list(looks),
        "nominal_alphas": list(nominals),
        "resampled": experiments.resampled,
    }


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


def scorers(train: Sequence[PromptResponses], bundled: BundledModel) -> dict[str, Scorer]:
    """Per condition: a leave-one-change-out model for each change (it saw neither the prompts nor the change),
    the bundled model for the rerun (the paired statistic has mean zero there whatever the model)."""
    rows = build_rows(train, ALL_CHANGES)
    models: dict[str, Scorer] = {RERUN: bundled.score}
    for change in ALL_CHANGES:
        booster = fit([r for r in rows if r.change != change])
        models[change] = booster.predict
        print(f"  leave-one-change-out model without {change}", flush=True)
    return models


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def parse_settings() -> tuple[Settings, bool]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=FULL.reps, help="experiments per cell (t-tests, sequential)")
    parser.add_argument("--mmd-reps", type=int, default=FULL.mmd_reps, help="experiments per cell that run MMD")
    parser.add_argument("--permutations", type=int, default=FULL.permutations, help="MMD permutations (b)")
    parser.add_argument("--seed", type=int, default=FULL.seed)
    parser.add_argument("--quick", action="store_true", help="smoke run: few draws, experiments and permutations")
    parser.add_argument("--render", action="store_true", help="only rewrite the doc and the plot from the results")
    args = parser.parse_args()
    if args.render:
        write_outputs(json.loads(RESULTS.read_text(encoding="utf-8")))
        sys.exit(0)
    chosen = replace(FULL, reps=args.reps, mmd_reps=min(args.mmd_reps, args.reps), permutations=args.permutations)
    return replace(QUICK if args.quick else chosen, seed=args.seed), args.quick


def measure(
    qualified: Mapping[int, Sequence[PromptResponses]],
    measured: Sequence[int],
    models: Mapping[str, Scorer],
    scales: Mapping[str, float],
    settings: Settings,
    started: float,
) -> dict:
    """Every condition at every measured k: rejection rates per n, the sequential design at k = 3, MMD checks."""
    rng = np.random.default_rng(settings.seed)
    pooled = {p.id: EvalPrompt.of(p) for p in qualified[min(SAMPLE_COUNTS)]}
    print(f"pools and kernels of {len(pooled)} prompts ready ({time.monotonic() - started:.0f}s)", flush=True)
    rates: dict[str, dict[str, dict[str, dict]]] = {c: {} for c in CONDITIONS}
    sequential: dict[str, dict[str, dict[str, dict]]] = {t: {c: {} for c in CONDITIONS} for t in SEQUENTIAL_TESTS}
    checks: list[dict] = []
    for k in measured:
        prompts = [pooled[p.id] for p in qualified[k]]
        for condition in CONDITIONS:
            cell = build_cell(prompts, condition, k, models[condition], settings, rng)
            if condition in (RERUN, ALL_CHANGES[0]):
                checks += check_against_package(prompts, cell, settings.package_checks, rng)
            rates[condition][f"k={k}"] = {}
            for n in PROMPT_COUNTS:
                experiments = plan(len(prompts), n, settings.reps, cell.draws.shape[1], rng)
                row = rejection_rates(cell, experiments, settings, scales, rng)
                rates[condition][f"k={k}"][f"n={n}"] = {"resampled": experiments.resampled, **row}
            if k == SEQUENTIAL_SAMPLES:
                for planned in SEQUENTIAL_PLANS:
                    experiments = plan(len(prompts), planned, settings.reps, cell.draws.shape[1], rng)
                    for test in SEQUENTIAL_TESTS:
                        design = sequential_design(cell, experiments, planned, test, scales)
                        sequential[test][condition][f"N={planned}"] = design
            print(f"k={k} {condition:16s} done ({time.monotonic() - started:.0f}s)", flush=True)
    lengths = np.array([len(text) for prompt in pooled.values() for text in prompt.texts])
    return {
        "rejection_rate": rates,
        "sequential": sequential,
        "mmd_package_check": checks,
        "response_lengths": {
            "truncated": float(np.mean(lengths > mmd.MMD_LENGTH)),
            "p99": float(np.percentile(lengths, 99)),
            "max": int(lengths.max()),
        },
    }


def main() -> None:
    settings, quick = parse_settings()
    started = time.monotonic()
    env = environment()
    prompts = load_prompts()  # once: the generator may append while this runs
    train = [p for p in prompts if p.split == "train"]
    held_out = [p for p in prompts if p.split == "eval"]
    qualified = {k: [p for p in held_out if qualifies(p, k)] for k in SAMPLE_COUNTS}
    measured = [k for k in SAMPLE_COUNTS if len(qualified[k]) >= settings.min_qualified]
    print(
        f"{len(train)} train, {len(held_out)} eval prompts; qualifying: "
        + ", ".join(f"k={k}: {len(qualified[k])}" for k in SAMPLE_COUNTS),
        flush=True,
    )
    bundled = BundledModel.load()
    scales = dict(bundled.card.component_scales)
    measurements = measure(qualified, measured, scorers(train, bundled), scales, settings, started)
    lengths = measurements.pop("response_lengths")
    meta = {
        **env,
        "command": " ".join([COMMAND, *sys.argv[1:]]),
        "runtime_seconds": round(time.monotonic() - started),
        "alpha": ALPHA,
        "quick": quick,
        "reps": settings.reps,
        "mmd_reps": settings.mmd_reps,
        "permutations": settings.permutations,
        "draws_per_prompt": settings.draws,
        "seed": settings.seed,
        "train_prompts": len(train),
        "eval_prompts": len(held_out),
        "qualified_prompts": {f"k={k}": len(qualified[k]) for k in SAMPLE_COUNTS},
        "measured_k": measured,
        "min_qualified": settings.min_qualified,
        "mmd_length": mmd.MMD_LENGTH,
        "responses_truncated": lengths["truncated"],
        "response_chars_p99": lengths["p99"],
        "response_chars_max": lengths["max"],
        "spectrum_order": mmd.SPECTRUM_ORDER,
        "bundled_model": bundled.info.short,
        "component_scales": scales,
        "calibration_tolerance": {str(r): tolerance(r) for r in sorted({settings.reps, settings.mmd_reps})},
    }
    write_outputs({"meta": meta, "tests": list(TESTS), **measurements})


# ---------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------


def tolerance(reps: int) -> float:
    """Highest false-positive rate still called calibrated: alpha plus two Monte Carlo standard errors."""
    return ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / reps)


def experiments_of(meta: Mapping, test: str) -> int:
    return meta["mmd_reps"] if test in MMD_TESTS else meta["reps"]


def calibrated(results: Mapping, k: str, n: str) -> list[str]:
    meta, null = results["meta"], results["rejection_rate"][RERUN][k][n]
    return [t for t in TESTS if null[t] <= tolerance(experiments_of(meta, t))]


def write_outputs(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    plot(results)
    DOC.write_text(render(results), encoding="utf-8")
    print(f"wrote {RESULTS}, {DOC}, {PLOT}", flush=True)


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def _n_label(n: str, cell: Mapping) -> str:
    return n.removeprefix("n=") + ("*" if cell["resampled"] else "")


def _table_head(first: Sequence[str]) -> list[str]:
    return ["| " + " | ".join([*first, *TESTS]) + " |", "|" + "---|" * (len(first) + len(TESTS))]


def calibration_table(results: Mapping) -> list[str]:
    meta, lines = results["meta"], _table_head(["k", "n"])
    for k, by_n in results["rejection_rate"][RERUN].items():
        for n, cell in by_n.items():
            values = [_fmt(cell[t]) + (" ⚠" if cell[t] > tolerance(experiments_of(meta, t)) else "") for t in TESTS]
            lines.append(f"| {k.removeprefix('k=')} | {_n_label(n, cell)} | " + " | ".join(values) + " |")
    return lines


def power_table(results: Mapping, change: str) -> list[str]:
    lines = _table_head(["k", "n"])
    for k, by_n in results["rejection_rate"][change].items():
        for n, cell in by_n.items():
            fair = calibrated(results, k, n)
            best = max((round(cell[t], 2) for t in fair), default=None)
            values = [
                f"**{_fmt(cell[t])}**" if t in fair and round(cell[t], 2) == best else _fmt(cell[t]) for t in TESTS
            ]
            lines.append(f"| {k.removeprefix('k=')} | {_n_label(n, cell)} | " + " | ".join(values) + " |")
    return lines


def sequential_table(results: Mapping, test: str) -> list[str]:
    lines = [
        "| condition | planned N | looks | fixed design | sequential | mean prompts queried | saving |",
        "|---|---|---|---|---|---|---|",
    ]
    for condition, by_plan in results["sequential"][test].items():
        for planned, row in by_plan.items():
            label = planned.removeprefix("N=") + ("*" if row["resampled"] else "")
            lines.append(
                f"| {condition} | {label} | {', '.join(map(str, row['looks']))} | {_fmt(row['fixed'])} | "
                f"{_fmt(row['sequential'])} | {row['mean_prompts']:.1f} | {row['saving']:.0%} |"
            )
    return lines


def _best_of(cell: Mapping, tests: Sequence[str], fair: Sequence[str]) -> tuple[str, float] | None:
    candidates = [(t, cell[t]) for t in tests if t in fair]
    return max(candidates, key=lambda item: item[1]) if candidates else None


MARGIN = 0.05  # power differences below this are called ties in the findings


def findings(results: Mapping) -> list[str]:
    """Sentences computed from the numbers: where SimCT default wins, ties and loses."""
    k = f"k={PLOT_SAMPLES}"
    if k not in results["rejection_rate"][RERUN]:
        return [f"- k = {PLOT_SAMPLES} was not measured (too few qualifying prompts)."]
    lines = [_head_to_head(results, k, n) for n in ("n=20", "n=100")]
    lines += _mmd_findings(results, k)
    lines += _overall_findings(results)
    lines += _undetected_findings(results, k)
    lines += _calibration_findings(results)
    lines += _length_findings(results)
    lines += _diversity_findings(results)
    lines += _sequential_findings(results)
    return lines


def _head_to_head(results: Mapping, k: str, n: str) -> str:
    fair = calibrated(results, k, n)
    wins, ties, losses = [], [], []
    for change in ALL_CHANGES:
        cell = results["rejection_rate"][change][k][n]
        rival = _best_of(cell, [*BASELINE_METRICS, *MMD_TESTS], fair)
        if rival is None:
            continue
        text = f"{change} ({_fmt(cell[SIMCT])} vs {rival[0]} {_fmt(rival[1])})"
        if cell[SIMCT] >= rival[1] + MARGIN:
            wins.append(text)
        elif cell[SIMCT] <= rival[1] - MARGIN:
            losses.append(text)
        else:
            ties.append(text)
    caveat = "" if SIMCT in fair else " (SimCT default itself is not calibrated in this cell)"
    return (
        f"- At n = {n.removeprefix('n=')}, {k.replace('=', ' = ')}, against the best calibrated other test{caveat}: "
        f"SimCT default is ahead by {MARGIN:.2f} or more on {_list(wins)}; within {MARGIN:.2f} on {_list(ties)}; "
        f"behind on {_list(losses)}."
    )


def _overall_findings(results: Mapping) -> list[str]:
    """Per k, over every change and n: does SimCT default have the best calibrated power (ties within MARGIN)?"""
    lines = []
    for k in results["rejection_rate"][RERUN]:
        cells = best = 0
        leaders: dict[str, int] = {}
        for change in ALL_CHANGES:
            for n, cell in results["rejection_rate"][change][k].items():
                fair = calibrated(results, k, n)
                rival = _best_of(cell, [t for t in TESTS if t != SIMCT], fair)
                if rival is None or SIMCT not in fair:
                    continue
                cells += 1
                if cell[SIMCT] >= rival[1] - MARGIN:
                    best += 1
                else:
                    leaders[rival[0]] = leaders.get(rival[0], 0) + 1
        ahead = ", ".join(f"{test} {count}" for test, count in sorted(leaders.items(), key=lambda item: -item[1]))
        lines.append(
            f"- {k.replace('=', ' = ')}, over the {cells} (change, n) cells: SimCT default has the best power, or "
            f"within {MARGIN:.2f} of it, in {best}; another test is ahead by more in {cells - best}"
            + (f" ({ahead})." if ahead else ".")
        )
    return lines


def _mmd_findings(results: Mapping, k: str) -> list[str]:
    """SimCT default against the better MMD kernel on each change."""
    lines = []
    for n in ("n=20", "n=100"):
        fair = calibrated(results, k, n)
        ahead, behind = [], []
        for change in ALL_CHANGES:
            cell = results["rejection_rate"][change][k][n]
            mmd = _best_of(cell, MMD_TESTS, fair)
            if mmd is None:
                continue
            text = f"{change} ({_fmt(cell[SIMCT])} vs {_fmt(mmd[1])})"
            if mmd[1] >= cell[SIMCT] + MARGIN:
                ahead.append(text)
            elif mmd[1] <= cell[SIMCT] - MARGIN:
                behind.append(text)
        lines.append(
            f"- MMD (the better kernel) at {n.replace('=', ' = ')}, {k.replace('=', ' = ')}: behind SimCT default by "
            f"{MARGIN:.2f} or more on {len(behind)} changes ({_list(behind)}); ahead on {_list(ahead)}."
        )
    return lines


def _undetected_findings(results: Mapping, k: str) -> list[str]:
    n = f"n={max(PROMPT_COUNTS)}"
    fair = calibrated(results, k, n)
    missed = []
    for change in ALL_CHANGES:
        best = _best_of(results["rejection_rate"][change][k][n], TESTS, fair)
        if best is not None and best[1] < 0.5:
            missed.append(f"{change} (best: {best[0]} {_fmt(best[1])})")
    where = f"{n.replace('=', ' = ')}, {k.replace('=', ' = ')}"
    return [f"- Detected less than half of the time by every calibrated test at {where}: {_list(missed)}."]


def _list(items: Sequence[str]) -> str:
    return "; ".join(items) if items else "none"


def _calibration_findings(results: Mapping) -> list[str]:
    meta, over, cells = results["meta"], [], 0
    for k, by_n in results["rejection_rate"][RERUN].items():
        for n, cell in by_n.items():
            cells += len(TESTS)
            over += [f"{t} ({k}, {n}: {_fmt(cell[t])})" for t in TESTS if cell[t] > tolerance(experiments_of(meta, t))]
    # A calibrated test exceeds alpha + 2 standard errors by chance about 2.3% of the time (normal approximation).
    by_chance = cells * 0.023
    if not over:
        return ["- Every test kept its false-positive rate within alpha plus two Monte Carlo standard errors."]
    return [
        f"- False-positive rate above alpha plus two Monte Carlo standard errors in {len(over)} of {cells} "
        f"(test, k, n) cells (about {by_chance:.0f} would be by chance alone): {_list(over)}."
    ]


def _versus(
    results: Mapping, other: str, test: str = SIMCT
) -> tuple[int, list[tuple[float, str]], list[tuple[float, str]]]:
    """`test` minus `other` over every change, k and n: cells compared, cells ahead and behind by MARGIN."""
    differences = [
        (cell[test] - cell[other], f"{change}, {k}, {n}")
        for change in ALL_CHANGES
        for k, by_n in results["rejection_rate"][change].items()
        for n, cell in by_n.items()
    ]
    ahead = sorted((d for d in differences if d[0] >= MARGIN), reverse=True)
    behind = sorted(d for d in differences if d[0] <= -MARGIN)
    return len(differences), ahead, behind


def _largest(found: list[tuple[float, str]]) -> str:
    return f" (largest: {found[0][0]:+.2f} on {found[0][1]})" if found else ""


def _length_findings(results: Mapping) -> list[str]:
    """What adding the length component to the classifier gains or costs."""
    cells, gains, costs = _versus(results, SIMCT_CLASSIFIER, SIMCT_SHIFT)
    return [
        f"- SimCT without diversity against its classifier alone, over all {cells} (change, k, n) cells: adding the "
        f"length component gains {MARGIN:.2f} or more power in {len(gains)}{_largest(gains)}; it costs "
        f"{MARGIN:.2f} or more in {len(costs)}{_largest(costs)}."
    ]


def _diversity_findings(results: Mapping) -> list[str]:
    """What joining the two-sided diversity test to the shift test gains or costs."""
    cells, ahead, behind = _versus(results, SIMCT_SHIFT)
    return [
        f"- SimCT default against SimCT without diversity (the default before), over all {cells} (change, k, n) "
        f"cells: the diversity test gains {MARGIN:.2f} or more power in {len(ahead)}{_largest(ahead)}; it costs "
        f"{MARGIN:.2f} or more in {len(behind)}{_largest(behind)}."
    ]


def _sequential_findings(results: Mapping) -> list[str]:
    lines = []
    for test in SEQUENTIAL_TESTS:
        by_condition = results["sequential"][test]
        for planned in (f"N={n}" for n in SEQUENTIAL_PLANS):
            if planned not in by_condition[RERUN]:
                continue
            detected = [c for c in ALL_CHANGES if by_condition[c][planned]["fixed"] >= 0.8]
            savings = [by_condition[c][planned]["saving"] for c in detected]
            null = by_condition[RERUN][planned]
            drop = max(by_condition[c][planned]["fixed"] - by_condition[c][planned]["sequential"] for c in ALL_CHANGES)
            saved = f"queries {np.mean(savings):.0%} fewer prompts on average" if savings else "saves nothing"
            lines.append(
                f"- Sequential {test}, N = {planned.removeprefix('N=')}: on the {len(detected)} changes the fixed "
                f"design detects at least 80% of the time it {saved}; false-positive rate {_fmt(null['sequential'])} "
                f"(fixed {_fmt(null['fixed'])}); largest power drop from the fixed design {drop:+.2f}."
            )
    return lines


def render(results: Mapping) -> str:
    meta = results["meta"]
    qualified = ", ".join(f"{k}: {count}" for k, count in meta["qualified_prompts"].items())
    skipped = [k for k in SAMPLE_COUNTS if k not in meta["measured_k"]]
    checks = results["mmd_package_check"]
    draws_checked = sum(1 for c in checks if c["kernel"] == MMD_KERNELS[0] and c["labels"] == "observed")
    lines = [
        "# Detection benchmark: SimCT against single metrics and MMD",
        "",
        "How often each test rejects (alpha 0.05) when the candidate stage is a real changed llama.cpp deployment "
        "(power), and when it is the same deployment queried again (false-positive rate). Every test decides on "
        "exactly the same responses in each experiment.",
        "",
        *(
            ["**Smoke run (`--quick`): too few experiments for the numbers to mean anything.**", ""]
            if meta["quick"]
            else []
        ),
        "## How it was measured",
        "",
        f"- **When, where**: {meta['date']} on {meta['machine']}; load average {meta['load_average']} "
        f"({_busy(meta)}); commit {meta['commit']}; run time {meta['runtime_seconds']} s.",
        f"- **Command**: `{meta['command']}` (after `pip install -r requirements-bench.txt`).",
        f"- **Data**: the dataset's eval-split prompts (never trained on): {meta['eval_prompts']} complete. A prompt "
        f"qualifies for k samples per prompt when it has 3k reference samples and k of every change; qualifying "
        f"prompts per k: {qualified}."
        + (
            f" k = {', '.join(map(str, skipped))}: fewer than {meta['min_qualified']}, not measured." if skipped else ""
        ),
        f"- **Draws**: per prompt, change and k, {meta['draws_per_prompt']} random draws of the reference's 2k and "
        "the change's k samples. Reruns split 3k distinct reference samples 2k / k, every split of a random set of 3k "
        f"samples (k = 1: 28 sets of 3, {RERUN_SPLITS} draws; k = 3: one set of 9, 84 draws; k = 5: one set of 15, "
        "3,003 draws): each prompt's paired statistics then average exactly zero over its draws (the benchmark "
        "checks it) and a split is uniform over all splits, as the permutation test assumes. An experiment picks n "
        "prompts (without replacement when n is at most the qualifying prompts, else with replacement: marked *) "
        "and one draw per prompt. Resampled cells reuse a finite set of prompts: read their power as optimistic.",
        f"- **Experiments**: {meta['reps']} per cell for the t-tests, the first {meta['mmd_reps']} of them also for "
        f"MMD; {meta['permutations']} permutations per MMD test; seed {meta['seed']}.",
        "- **SimCT default**: per prompt, compare.py's paired statistics averaged over every (anchor A, held-back "
        "B, candidate C) choice of sets of k: classifier score(A, C) - score(A, B), length ratio(A, B) - "
        "length ratio(A, C), and the diversity: how narrow C's sampling looks minus how narrow B's does "
        "(`compare.concentration`: the mean of within-set chrF, BLEU, ROUGE-L and edit similarity, averaged with "
        "the share of repeated word bigrams in each response). The product's `compare.model_wise` decides: "
        "one one-sided t-test on "
        f"classifier / {meta['component_scales']['classifier']:g} + length / {meta['component_scales']['length']:g} "
        f"(the components' same-deployment spreads from the model card) at alpha x {1 - DIVERSITY_SHARE:g}, or a "
        f"two-sided t-test of the diversity at alpha x {DIVERSITY_SHARE:g} (a weighted Bonferroni union). At k = 1 "
        "a set has no within-set pair, so there the default is the one-sided test alone. *SimCT without "
        "diversity*: the one-sided test alone at alpha, the default before the diversity test joined it. *SimCT "
        "classifier only* is the classifier component alone at alpha. For each change the classifier is a "
        "leave-one-change-out "
        f"model trained on the {meta['train_prompts']} train prompts without that change; for the rerun it is the "
        f"bundled model {meta['bundled_model']}. The models were trained on 1 to 3 samples per side only.",
        "- **Single metrics**: one-sided paired t-test of within-reference minus cross-stage similarity (the "
        "same A, B, C choices and feature matrices): chrF, BLEU, ROUGE-L, edit similarity, length ratio.",
        f"- **MMD** (Gao, Liang, Guestrin, *Model Equality Testing*, ICLR 2025; `model-equality-testing` 0.0.2): "
        f"the reference's 2k responses against the candidate's k over the n prompts, kernel zero across prompts. "
        f"Responses are sequences of Unicode code points truncated or padded to L = {meta['mmd_length']} characters "
        f"(response length: 99th percentile {meta['response_chars_p99']:.0f}, longest {meta['response_chars_max']}; "
        f"{meta['responses_truncated']:.2%} of responses truncated). Kernels: the package's character Hamming "
        f"kernel and its cumulative {meta['spectrum_order']}-spectrum kernel, both normalised as the package does "
        "(padding counts as characters, so both also see length). p-value: (1 + #{permuted statistics >= "
        "observed}) / (1 + permutations), labels permuted within each prompt. At k = 1 there are no candidate "
        "pairs: the package's statistic is undefined (0 / 0) and its candidate-pair term is left out, so the k = 1 MMD "
        "rows measure a different statistic (reference pairs minus cross pairs) than the k = 3 and 5 rows.",
        f"- **Fast MMD path, checked**: the product's own test (`simct_ci/mmd.py`, what `gate.test: mmd` runs); "
        "each prompt's kernel matrix is computed once, and every draw and "
        f"permutation is scored by indexing it. On {draws_checked} draws (as observed and with labels permuted "
        "within prompts; reruns and a change at every k) the benchmark recomputed the statistic with the package's "
        "own `mmd_hamming` and `mmd_kspectrum` on `CompletionSample`s and required `np.isclose` "
        "agreement (at k = 1: that the package gives NaN); it stops otherwise. Largest difference: "
        f"{_largest_difference(checks):.1e}.",
        f"- **Calibrated**: a false-positive rate at most alpha + 2 Monte Carlo standard errors "
        f"({', '.join(f'{v:.3f} at {r} experiments' for r, v in meta['calibration_tolerance'].items())}); ⚠ marks "
        "the others. In the power tables the best power among the tests calibrated at that n and k is in bold.",
        "",
        "![Power against prompts, k = 3](pictures/detection-power.png)",
        "",
        "## Calibration: false-positive rate on same-deployment reruns",
        "",
        *calibration_table(results),
        "",
        "## Where SimCT wins and where it does not",
        "",
        *findings(results),
        "",
        "## Power per change",
        "",
    ]
    for change in ALL_CHANGES:
        lines += [f"### {change} ({SEVERITY[change]})", "", *power_table(results, change), ""]
    lines += [
        "## Sequential mode (k = 3)",
        "",
        "Tested after each quarter of the planned prompts N, stopping at the first look that rejects (O'Brien-Fleming "
        "spending; never stopping early for *consistent*), against the fixed design testing once at N, on the same "
        "experiments. Saving: 1 - mean prompts queried / N.",
        "",
        "### SimCT default (looks spend each share of alpha, `sequential.nominal_alphas`, as compare.py)",
        "",
        *sequential_table(results, SIMCT),
        "",
    ]
    return "\n".join(lines)


def _busy(meta: Mapping) -> str:
    """The other processes busy when the run started, as `bench/machine.py` saw them."""
    busy = [
        " ".join(line.split()[1:4]).replace("/root/.pyenv/versions/3.11.7/bin/", "") for line in meta["busy_processes"]
    ]
    return "busy at the start: " + ", ".join(f"`{process}`" for process in busy) if busy else "no other busy process"


def _largest_difference(checks: Sequence[Mapping]) -> float:
    differences = [abs(c["fast"] - c["package"]) for c in checks if c["package"] is not None]
    return max(differences, default=0.0)


def plot(results: Mapping) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = f"k={PLOT_SAMPLES}"
    if k not in results["rejection_rate"][RERUN]:
        return
    palette = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown")
    styles = {
        SIMCT: {"color": "black", "linewidth": 2.5},
        SIMCT_SHIFT: {"color": "dimgrey", "linewidth": 2, "linestyle": "-."},
        SIMCT_CLASSIFIER: {"color": "black", "linestyle": "--"},
        **{metric: {"color": color, "linewidth": 1} for metric, color in zip(BASELINE_METRICS, palette, strict=True)},
        "MMD Hamming": {"color": "tab:red", "marker": "s", "linewidth": 2},
        "MMD 5-spectrum": {"color": "tab:red", "marker": "^", "linestyle": ":", "linewidth": 2},
    }
    figure, axes = plt.subplots(2, 5, figsize=(20, 8), sharex=True)
    for axis, condition in zip(axes.flat, CONDITIONS, strict=True):
        by_n = results["rejection_rate"][condition][k]
        counts = [int(n.removeprefix("n=")) for n in by_n]
        for test in TESTS:
            axis.plot(counts, [cell[test] for cell in by_n.values()], label=test, **styles[test])
        if condition == RERUN:
            axis.axhline(ALPHA, color="black", linestyle=":", linewidth=1, label="alpha")
            axis.set_ylim(0, 0.3)
            axis.set_title("rerun: false-positive rate")
        else:
            axis.set_ylim(-0.02, 1.02)
            axis.set_title(f"{condition} ({SEVERITY[condition]})")
        axis.set_xscale("log")
        axis.set_xticks(PROMPT_COUNTS, [str(c) for c in PROMPT_COUNTS])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("prompts n")
    for axis in axes[:, 0]:
        axis.set_ylabel("rejection rate")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels))
    resampled = [n for n, cell in results["rejection_rate"][RERUN][k].items() if cell["resampled"]]
    note = f"; {', '.join(resampled)} resample prompts" if resampled else ""
    figure.suptitle(f"Rejection rate at alpha {ALPHA}, {PLOT_SAMPLES} samples per prompt{note}")
    figure.tight_layout(rect=(0, 0.05, 1, 0.97))
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT, dpi=90)
    plt.close(figure)


if __name__ == "__main__":
    main()
