"""Engine benchmark: calibration, power and response-wise AUROC on held-out prompts and held-out changes.

Run: python bench/engine.py            (writes bench/results/engine.json and docs/engine-benchmark.md)

Everything is measured on the dataset's eval prompts, which no model here was trained on. For each kind of
change, SimCT uses a leave-one-change-out model that never saw that change either. Baselines are one-sided
paired t-tests on a single metric (within-reference minus cross-stage similarity per prompt) on exactly the
same samples.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import platform
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simct_ci.compare import CLASSIFIER, DIVERSITY, LENGTH, GateSettings, concentration, model_wise
from simct_ci.features import FEATURE_NAMES, split_features_batch
from simct_ci.model import BundledModel, read_card
from simct_ci.stats import PAIRED_T
from simct_ci.training.dataset import (
    ALL_CHANGES,
    GREEDY_REFERENCE,
    PromptRows,
    build_rows,
    load_prompts,
)
from simct_ci.training.deployments import CHANGES, CORE_REFERENCE_SAMPLES, REFERENCE
from simct_ci.training.train import auroc, fit
from simct_ci.verdicts import INCONSISTENT

K = 3
ALPHA = 0.05
PROMPT_COUNTS = (20, 50, 100)
BASELINE_METRICS = ("chrf", "bleu", "rougeL", "edit_sim", "length_ratio")
STATISTICS = (*BASELINE_METRICS, DIVERSITY)  # kept per draw: the metrics' paired statistics and the diversity
SEVERITY = {c.change: c.severity for c in CHANGES}
TARGET_POWER = {"large": (20, 0.95), "moderate": (50, 0.9), "subtle": (100, 0.8)}
RESULTS = Path("bench/results/engine.json")
# The combined test's weights, from the bundled model's card: the same the product uses.
WEIGHTS = {name: 1.0 / scale for name, scale in read_card().component_scales.items()}
DOC = Path("docs/engine-benchmark.md")


@dataclass
class PromptEval:
    """Per-prompt statistics for every way the benchmark may draw this prompt's samples."""

    # Calibration, the protocol: 6 same-deployment samples split 3/3 (reference 3, so sets of 1v1).
    null_protocol: np.ndarray
    null_protocol_baseline: dict[str, np.ndarray]
    # Calibration of the product's default: reference 6, same-deployment candidate 3, drawn from 9 samples.
    null_default: np.ndarray
    null_default_baseline: dict[str, np.ndarray]
    # change -> d with 6 reference samples, sets 3v3, one value per draw of the samples (POWER_DRAWS); draw 0 is
    # the first 6 reference and first 3 changed samples.
    statistic: dict[str, np.ndarray] = field(default_factory=dict)
    score: dict[str, np.ndarray] = field(default_factory=dict)  # change -> mean cross-stage score, per draw
    baseline: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # change -> metric -> per draw
    # Response-wise negatives, scored by the same model as the change's positives (one classifier per AUROC):
    # change -> mean cross-stage score of a same-deployment candidate, per default split
    null_score: dict[str, np.ndarray] = field(default_factory=dict)
    null_centred: dict[str, np.ndarray] = field(default_factory=dict)  # change -> d of every default split
    greedy_null: dict[str, float] = field(default_factory=dict)  # change -> score of the greedy rerun
    greedy_score: dict[str, float] = field(default_factory=dict)
    greedy_unchanged: set[str] = field(default_factory=set)  # changes whose greedy response equals the reference's


PROTOCOL_POOL = 6  # the calibration protocol pools 6 samples of one deployment
# Draws of each prompt's samples per change: a prompt drawn twice into one experiment (more prompts than the
# held-out set) gets other samples, as a real rerun would, instead of repeating one value.
POWER_DRAWS = 8


def _metric(features: np.ndarray, metric: str) -> np.ndarray:
    return features[:, FEATURE_NAMES.index(f"cross_{metric}")]


def _paired(rows: PromptRows, reference: Sequence[int], candidate: Sequence[int], model) -> tuple[float, float, dict]:
    """The product's paired statistic (compare.py) on these samples, with one model, and the baselines.

    Returns (d, mean cross-stage score, {metric: within-reference minus cross-stage similarity}).
    """
    m = min(len(reference) // 2, len(candidate))
    choices = [
        (a, b, c)
        for a in itertools.combinations(reference, m)
        for b in itertools.combinations([i for i in reference if i not in a], m)
        for c in itertools.combinations(candidate, m)
    ]
    anchors, held_back, drawn = (np.array(side) for side in zip(*choices, strict=True))
    cross = split_features_batch(rows.pool, anchors, drawn)
    same = split_features_batch(rows.pool, anchors, held_back)
    s_cross, s_same = model.predict(cross), model.predict(same)
    baseline = {metric: float((_metric(same, metric) - _metric(cross, metric)).mean()) for metric in BASELINE_METRICS}
    # compare.py's diversity component; sets of one sample have no within-set pair (NaN, and compare leaves it out)
    baseline[DIVERSITY] = float((concentration(cross) - concentration(same)).mean()) if m >= 2 else math.nan
    return float(s_cross.mean() - s_same.mean()), float(s_cross.mean()), baseline


def _null_draws(rows: PromptRows, draws: list[tuple[list[int], list[int]]], model) -> tuple[np.ndarray, dict, list]:
    statistics, scores, baselines = [], [], {m: [] for m in STATISTICS}
    for reference, candidate in draws:
        d, score, base = _paired(rows, reference, candidate, model)
        statistics.append(d)
        scores.append(score)
        for metric, value in base.items():
            baselines[metric].append(value)
    return np.array(statistics), {m: np.array(v) for m, v in baselines.items()}, scores


def evaluate_prompt(rows: PromptRows, null_model, change_models: dict, rng: random.Random) -> PromptEval:
    # The 6+3 protocol draws from 9 samples; prompts topped up to 15 (for bench/detection.py) use their first 9,
    # so every prompt weighs the same and the split count stays C(9, 3).
    every = rows.indices(REFERENCE)[:CORE_REFERENCE_SAMPLES]
    pool = every[:PROTOCOL_POOL]
    protocol = [(list(ref), [i for i in pool if i not in ref]) for ref in itertools.combinations(pool, K)]
    # Every (6 reference, 3 candidate) split of the 9 samples: a random subset would carry its own chance
    # offset into every experiment that reuses it.
    default = [([i for i in every if i not in cand], list(cand)) for cand in itertools.combinations(every, K)]
    protocol_stats, protocol_base, _ = _null_draws(rows, protocol, null_model)
    default_stats, default_base, _ = _null_draws(rows, default, null_model)
    evaluation = PromptEval(protocol_stats, protocol_base, default_stats, default_base)
    reference = every[: 2 * K]  # what the product asks the reference for at samples = 3
    first, rerun = rows.indices(GREEDY_REFERENCE)[:2]
    for change, model in change_models.items():
        changed = rows.indices(change)
        draws = [(reference, changed[:K])]
        draws += [(rng.sample(rows.indices(REFERENCE), 2 * K), rng.sample(changed, K)) for _ in range(POWER_DRAWS - 1)]
        statistics, baselines, scores = _null_draws(rows, draws, model)
        evaluation.statistic[change], evaluation.baseline[change] = statistics, baselines
        evaluation.score[change] = np.array(scores)
        null_stats, _, null_scores = _null_draws(rows, default, model)
        evaluation.null_centred[change], evaluation.null_score[change] = null_stats, np.array(null_scores)
        greedy = f"{change}@greedy"
        if greedy in rows.prompt.responses:
            rerun_pair = rows.row([first], [rerun], 0, "", "").features[None, :]
            evaluation.greedy_null[change] = float(model.predict(rerun_pair)[0])
            pair = rows.row([first], rows.indices(greedy)[:1], 1, change, "greedy").features[None, :]
            evaluation.greedy_score[change] = float(model.predict(pair)[0])
            if rows.prompt.responses[greedy][0] == rows.prompt.responses[GREEDY_REFERENCE][0]:
                evaluation.greedy_unchanged.add(change)
    return evaluation


def _reject(values: np.ndarray) -> bool:
    """Columns (classifier, length, diversity) -> the product's own decision (compare.model_wise), without the
    diversity when the sets hold one sample; one column -> one one-sided t-test."""
    if values.ndim == 2:
        components = {CLASSIFIER: values[:, 0], LENGTH: values[:, 1]}
        if not np.isnan(values[:, 2]).any():
            components[DIVERSITY] = values[:, 2]
        settings = GateSettings(alpha=ALPHA, min_prompts=2)
        return model_wise(components, WEIGHTS, PAIRED_T, settings).verdict == INCONSISTENT
    if np.ptp(values) <= 1e-12:
        return bool(values.mean() > 1e-12)
    return bool(stats.ttest_1samp(values, 0.0, alternative="greater").pvalue < ALPHA)


def rejection_rate(draw, n_prompts: int, pool: int, reps: int, rng: random.Random) -> tuple[float, bool]:
    """Share of `reps` random experiments whose test rejects; prompts drawn with replacement when n > pool."""
    with_replacement = n_prompts > pool
    hits = 0
    for _ in range(reps):
        chosen = rng.choices(range(pool), k=n_prompts) if with_replacement else rng.sample(range(pool), n_prompts)
        hits += _reject(np.array([draw(i) for i in chosen]))
    return hits / reps, with_replacement


def effect_size(values: np.ndarray) -> float:
    return float(values.mean() / values.std(ddof=1)) if values.std(ddof=1) > 0 else float("nan")


def mean_effect_size(draws: Sequence[np.ndarray]) -> float:
    """Per prompt, one value per draw of its samples: the effect size over prompts, averaged over the draws."""
    values = np.vstack(draws)  # prompts x draws
    return float(np.mean([effect_size(values[:, draw]) for draw in range(values.shape[1])]))


class BoosterModel:
    """A LightGBM booster behind the same .predict the bundled model's booster has."""

    def __init__(self, booster) -> None:
        self.predict = booster.predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    prompts = load_prompts()
    train = [p for p in prompts if p.split == "train"]
    held_out = [p for p in prompts if p.split == "eval"]
    print(f"{len(train)} train prompts, {len(held_out)} held-out prompts", flush=True)
    train_rows = build_rows(train, ALL_CHANGES)
    loco = {change: BoosterModel(fit([r for r in train_rows if r.change != change])) for change in ALL_CHANGES}
    bundled = BundledModel.load()
    null_model = BoosterModel(bundled._booster)
    evaluations = []
    for prompt in held_out:
        evaluations.append(evaluate_prompt(PromptRows(prompt), null_model, loco, rng))
    print("per-prompt statistics ready", flush=True)
    results = summarise(evaluations, rng, args.reps)
    results["meta"] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
        "train_prompts": len(train),
        "held_out_prompts": len(held_out),
        "reps": args.reps,
        "samples_per_prompt": K,
        "alpha": ALPHA,
        "model": bundled.info.short,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    DOC.write_text(render(results))
    print(DOC.read_text())


def summarise(evaluations: list[PromptEval], rng: random.Random, reps: int) -> dict:
    n = len(evaluations)

    def random_split(statistic):
        def draw(i):
            values = statistic(evaluations[i])
            return values[rng.randrange(len(values))]

        return draw

    def random_split_union(statistic, baseline):
        """One random split per prompt, and every component of the product's test on that same split."""

        def draw(i):
            values = statistic(evaluations[i])
            lengths, diversity = (baseline(evaluations[i], name) for name in ("length_ratio", DIVERSITY))
            r = rng.randrange(len(values))
            return (values[r], lengths[r], diversity[r])

        return draw

    calibration = {}
    for setting, statistic, baseline in (
        ("3/3 protocol", lambda e: e.null_protocol, lambda e, m: e.null_protocol_baseline[m]),
        ("6+3 default", lambda e: e.null_default, lambda e, m: e.null_default_baseline[m]),
    ):
        for count in PROMPT_COUNTS:
            row = {
                "simct": rejection_rate(random_split_union(statistic, baseline), count, n, reps, rng)[0],
                "classifier": rejection_rate(random_split(statistic), count, n, reps, rng)[0],
            }
            for m in BASELINE_METRICS:
                row[m] = rejection_rate(random_split(lambda e, m=m, b=baseline: b(e, m)), count, n, reps, rng)[0]
            calibration[f"{setting}, {count} prompts"] = row

    power, effects, response_auroc = {}, {}, {}
    for change in ALL_CHANGES:
        power[change] = {}
        for count in PROMPT_COUNTS:
            statistic, baseline = _changed_draws(change)
            rate, replaced = rejection_rate(random_split_union(statistic, baseline), count, n, reps, rng)
            row = {"simct": rate, "prompts_resampled": replaced}
            row["classifier"] = rejection_rate(random_split(statistic), count, n, reps, rng)[0]
            for m in BASELINE_METRICS:
                row[m] = rejection_rate(random_split(lambda e, m=m, b=baseline: b(e, m)), count, n, reps, rng)[0]
            power[change][str(count)] = row
        statistic, baseline = _changed_draws(change)
        effects[change] = {
            "classifier": mean_effect_size([statistic(e) for e in evaluations]),
            "shift": mean_effect_size([_shift(statistic(e), baseline(e, "length_ratio")) for e in evaluations]),
            "diversity": mean_effect_size([baseline(e, DIVERSITY) for e in evaluations]),
        }
        for m in BASELINE_METRICS:
            effects[change][m] = mean_effect_size([baseline(e, m) for e in evaluations])
        greedy_pos = [e.greedy_score[change] for e in evaluations if change in e.greedy_score]
        greedy_neg = [e.greedy_null[change] for e in evaluations if change in e.greedy_null]
        response_auroc[change] = {
            # One realisation per side, as a run sees it: every draw of the changed samples against every
            # same-deployment split, pooled over prompts (equal counts per prompt on each side).
            "sampled_k3": pooled_auroc(
                [e.score[change] for e in evaluations], [e.null_score[change] for e in evaluations]
            ),
            # The report's "centred" score: cross-stage minus same-deployment score, so each prompt is its own baseline.
            "sampled_k3_centred": pooled_auroc(
                [e.statistic[change] for e in evaluations], [e.null_centred[change] for e in evaluations]
            ),
            "sampled_k3_chrf_only": pooled_auroc(
                [e.baseline[change]["chrf"] for e in evaluations],
                [e.null_default_baseline["chrf"] for e in evaluations],
            ),
            "greedy_k1": auroc(greedy_pos, greedy_neg) if greedy_pos else None,
            # Prompts where the change leaves the greedy response as it was (a response that ends before a halved
            # max_tokens, say): no method can tell those apart, and they bound the greedy AUROC.
            "greedy_unchanged": sum(change in e.greedy_unchanged for e in evaluations),
            "greedy_k1_changed_only": auroc(
                [
                    e.greedy_score[change]
                    for e in evaluations
                    if change in e.greedy_score and change not in e.greedy_unchanged
                ],
                greedy_neg,
            )
            if greedy_pos
            else None,
        }
    return {"calibration": calibration, "power": power, "effect_size": effects, "response_auroc": response_auroc}


def pooled_auroc(positive: Sequence[np.ndarray], negative: Sequence[np.ndarray]) -> float:
    """AUROC over every realisation of every prompt: per-prompt arrays of changed and same-deployment scores."""
    return auroc(np.concatenate(positive), np.concatenate(negative))


def _shift(classifier: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The product's one-sided statistic: each component over its same-deployment spread, summed."""
    return classifier * WEIGHTS[CLASSIFIER] + length * WEIGHTS[LENGTH]


def _changed_draws(change: str):
    """(statistic, baseline) accessors of a change's draws, shaped like the calibration settings' accessors."""

    def statistic(evaluation: PromptEval) -> np.ndarray:
        return evaluation.statistic[change]

    def baseline(evaluation: PromptEval, metric: str) -> np.ndarray:
        return evaluation.baseline[change][metric]

    return statistic, baseline


def _fmt(value, decimals: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{decimals}f}"


def _header(*columns: str) -> list[str]:
    """A Markdown table's header row and its separator."""
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]


def render(results: dict) -> str:
    meta = results["meta"]
    lines = [
        "# Engine benchmark",
        "",
        f"Measured {meta['date']} on {meta['machine']} with `python bench/engine.py` "
        f"({meta['reps']} random experiments per cell, {meta['samples_per_prompt']} samples per prompt and side, "
        f"alpha {meta['alpha']}, bundled model {meta['model']}).",
        f"Data: {meta['held_out_prompts']} held-out prompts (never trained on; {meta['train_prompts']} train prompts). "
        "Power for each change uses a model trained without that change (leave-one-change-out). "
        "Where a prompt count exceeds the held-out prompts, prompts are drawn with replacement (marked *). "
        f"Each experiment takes one of {POWER_DRAWS} draws of each prompt's samples at random (6 of the reference's "
        f"samples, 3 of the changed deployment's), so a prompt drawn twice gets other samples.",
        "",
        "## Calibration (false-positive rate when the candidate is the same deployment)",
        "",
        "*3/3 protocol*: 6 samples of the reference deployment pooled and split 3/3 at random (the reference then "
        "has 3 samples, so the paired test compares sets of 1). *6+3 default*: the product's setting, a "
        "6-sample reference and a 3-sample candidate drawn at random from 9 samples of the same deployment.",
        "",
        *_header("setting", "SimCT", "classifier only", *BASELINE_METRICS),
    ]
    for count, row in results["calibration"].items():
        lines.append(
            f"| {count} | {_fmt(row['simct'])} | {_fmt(row['classifier'])} | "
            + " | ".join(_fmt(row[m]) for m in BASELINE_METRICS)
            + " |"
        )
    lines += [
        "",
        "## Power at alpha 0.05 (SimCT vs single-metric paired t-tests on the same samples)",
        "",
        "*SimCT* is the product's test (`compare.model_wise`): one one-sided paired t-test on the classifier's and "
        "the length statistic's per-prompt differences, each divided by its same-deployment spread from the model "
        "card, summed, at alpha x 0.8; or a two-sided paired t-test of the diversity (how alike the candidate's "
        "samples are among themselves and how much each repeats itself, minus the same of the held-back reference "
        "samples) at alpha x 0.2. With sets of one "
        "sample (the 3/3 protocol) there is no diversity and the one-sided test has the whole alpha. "
        "*classifier only* is the classifier's difference alone.",
        "",
        *_header("change", "group", "target", "prompts", "SimCT", "classifier only", *BASELINE_METRICS),
    ]
    for change, by_count in results["power"].items():
        severity = SEVERITY[change]
        target_n, target = TARGET_POWER[severity]
        for count, row in by_count.items():
            mark = "*" if row["prompts_resampled"] else ""
            goal = f">= {target} at {target_n}" if int(count) == target_n else ""
            lines.append(
                f"| {change} | {severity} | {goal} | {count}{mark} | **{_fmt(row['simct'])}** | "
                f"{_fmt(row['classifier'])} | " + " | ".join(_fmt(row[m]) for m in BASELINE_METRICS) + " |"
            )
    lines += [
        "",
        "Top-p 0.95 -> 0.8 is our own addition, not one of the changes the targets name (the subtle ones are "
        "Q3_K_M, temperature 1.0 and the system prompt); it is held to the subtle target all the same.",
        "",
        f"## Effect size (mean / sd over prompts of the per-prompt statistic, averaged over the {POWER_DRAWS} draws)",
        "",
        "*SimCT shift*: the product's one-sided statistic, the classifier's and the length ratio's differences "
        "each divided by their same-deployment spread and summed; *diversity*: its two-sided statistic (its size "
        "counts, not its sign: negative is a wider sampler). *classifier* and the metrics are one-sided: larger "
        "is better.",
        "",
        *_header("change", "SimCT shift", "diversity", "classifier", *BASELINE_METRICS),
    ]
    for change, row in results["effect_size"].items():
        lines.append(
            f"| {change} | **{_fmt(row['shift'])}** | {_fmt(row['diversity'])} | {_fmt(row['classifier'])} | "
            + " | ".join(_fmt(row[m]) for m in BASELINE_METRICS)
            + " |"
        )
    lines += [
        "",
        "## Response-wise AUROC (per prompt: changed deployment vs same deployment)",
        "",
        "Both sides of each AUROC are scored by the same model, the one that never saw the change. Sampled "
        f"AUROCs pool one realisation at a time: every one of the {POWER_DRAWS} draws of a prompt's changed samples "
        "against every same-deployment split of its samples (6 reference, 3 candidate), over all prompts. "
        "*sampled*: the classifier's mean cross-stage score (`p_inconsistent` in the report); *centred*: that score "
        "minus its same-deployment score on the held-back reference samples (the report's *Centred* column). "
        "*unchanged*: held-out prompts on which the change leaves the greedy response exactly as the reference's "
        "(no test can see a change there); *greedy, changed only*: the greedy AUROC without those prompts, to show "
        "what they cost (the target is on the column before it). AUROCs to 3 decimals, so that none is rounded up "
        "to a target.",
        "",
        *_header(
            "change",
            "group",
            "sampled, k=3",
            "sampled, k=3, centred",
            "chrF only, k=3",
            "greedy, k=1",
            "greedy: unchanged",
            "greedy, changed only",
        ),
    ]
    for change, row in results["response_auroc"].items():
        lines.append(
            f"| {change} | {SEVERITY[change]} | {_fmt(row['sampled_k3'], 3)} | {_fmt(row['sampled_k3_centred'], 3)} "
            f"| {_fmt(row['sampled_k3_chrf_only'], 3)} | {_fmt(row['greedy_k1'], 3)} "
            f"| {row['greedy_unchanged'] if row['greedy_k1'] is not None else '–'} "
            f"| {_fmt(row['greedy_k1_changed_only'], 3)} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
