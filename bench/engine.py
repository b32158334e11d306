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
import platform
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simct_ci.features import FEATURE_NAMES
from simct_ci.model import BundledModel
from simct_ci.training.dataset import (
    ALL_CHANGES,
    GREEDY_REFERENCE,
    PromptRows,
    build_rows,
    load_prompts,
)
from simct_ci.training.deployments import CHANGES, REFERENCE
from simct_ci.training.train import auroc, fit

K = 3
ALPHA = 0.05
PROMPT_COUNTS = (20, 50, 100)
BASELINE_METRICS = ("chrf", "bleu", "rougeL", "edit_sim", "length_ratio")
SEVERITY = {c.change: c.severity for c in CHANGES}
TARGET_POWER = {"large": (20, 0.95), "moderate": (50, 0.9), "subtle": (100, 0.8)}
RESULTS = Path("bench/results/engine.json")
DOC = Path("docs/engine-benchmark.md")


@dataclass
class PromptEval:
    """Per-prompt statistics for every way the benchmark may draw this prompt's samples."""

    null_statistic: np.ndarray  # the product's statistic for each ordered 3/3 split of the 6 reference samples
    null_score: float  # mean same-deployment score (A vs B over the 20 splits): a response-wise negative
    null_baseline: dict[str, np.ndarray]  # per split, single-metric statistic
    statistic: dict[str, float] = field(default_factory=dict)  # change -> d with 6 reference samples, m = 3
    score: dict[str, float] = field(default_factory=dict)  # change -> mean cross-stage score (response-wise)
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)
    greedy_null: float = float("nan")
    greedy_score: dict[str, float] = field(default_factory=dict)


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
    cross = np.vstack([rows.row(list(a), list(c), 0, "", "").features for a, _, c in choices])
    same = np.vstack([rows.row(list(a), list(b), 0, "", "").features for a, b, _ in choices])
    s_cross, s_same = model.predict(cross), model.predict(same)
    baseline = {metric: float((_metric(same, metric) - _metric(cross, metric)).mean()) for metric in BASELINE_METRICS}
    return float(s_cross.mean() - s_same.mean()), float(s_cross.mean()), baseline


def evaluate_prompt(rows: PromptRows, null_model, change_models: dict) -> PromptEval:
    reference = rows.indices(REFERENCE)
    null_stats, null_scores, null_base = [], [], {m: [] for m in BASELINE_METRICS}
    for ref in itertools.permutations(reference, K):  # ordered 3/3 splits, as a random split would draw them
        if list(ref) != sorted(ref):
            continue
        cand = [i for i in reference if i not in ref]
        d, score, base = _paired(rows, list(ref), cand, null_model)
        null_stats.append(d)
        null_scores.append(score)
        for metric, value in base.items():
            null_base[metric].append(value)
    evaluation = PromptEval(
        null_statistic=np.array(null_stats),
        null_score=float(np.mean(null_scores)),
        null_baseline={m: np.array(v) for m, v in null_base.items()},
    )
    first, rerun = rows.indices(GREEDY_REFERENCE)[:2]
    for change, model in change_models.items():
        d, score, base = _paired(rows, reference, rows.indices(change)[:K], model)
        evaluation.statistic[change], evaluation.score[change], evaluation.baseline[change] = d, score, base
        greedy = f"{change}@greedy"
        if greedy in rows.prompt.responses:
            pair = rows.row([first], rows.indices(greedy)[:1], 1, change, "greedy").features[None, :]
            evaluation.greedy_score[change] = float(model.predict(pair)[0])
    evaluation.greedy_null = float(null_model.predict(rows.row([first], [rerun], 0, "", "").features[None, :])[0])
    return evaluation


def _reject(values: np.ndarray) -> bool:
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
        evaluations.append(evaluate_prompt(PromptRows(prompt), null_model, loco))
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

    def fixed(statistic):
        return lambda i: statistic(evaluations[i])

    calibration = {}
    for count in PROMPT_COUNTS:
        row = {"simct": rejection_rate(random_split(lambda e: e.null_statistic), count, n, reps, rng)[0]}
        for m in BASELINE_METRICS:
            row[m] = rejection_rate(random_split(lambda e, m=m: e.null_baseline[m]), count, n, reps, rng)[0]
        calibration[str(count)] = row

    power, effects, response_auroc = {}, {}, {}
    for change in ALL_CHANGES:
        power[change] = {}
        for count in PROMPT_COUNTS:
            rate, replaced = rejection_rate(fixed(lambda e, c=change: e.statistic[c]), count, n, reps, rng)
            row = {"simct": rate, "prompts_resampled": replaced}
            for m in BASELINE_METRICS:
                row[m] = rejection_rate(fixed(lambda e, c=change, m=m: e.baseline[c][m]), count, n, reps, rng)[0]
            power[change][str(count)] = row
        effects[change] = {"simct": effect_size(np.array([e.statistic[change] for e in evaluations]))}
        for m in BASELINE_METRICS:
            effects[change][m] = effect_size(np.array([e.baseline[change][m] for e in evaluations]))
        greedy_pos = [e.greedy_score[change] for e in evaluations if change in e.greedy_score]
        response_auroc[change] = {
            "sampled_k3": auroc([e.score[change] for e in evaluations], [e.null_score for e in evaluations]),
            "sampled_k3_chrf_only": auroc(
                [e.baseline[change]["chrf"] for e in evaluations], [e.null_baseline["chrf"].mean() for e in evaluations]
            ),
            "greedy_k1": auroc(greedy_pos, [e.greedy_null for e in evaluations]) if greedy_pos else None,
        }
    return {"calibration": calibration, "power": power, "effect_size": effects, "response_auroc": response_auroc}


def _fmt(value) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2f}"


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
        "Where a prompt count exceeds the held-out prompts, prompts are drawn with replacement (marked *).",
        "",
        "## Calibration (false-positive rate, same deployment, 6 samples pooled and split 3/3 at random)",
        "",
        "| prompts | SimCT | " + " | ".join(BASELINE_METRICS) + " |",
        "|---|---|" + "---|" * len(BASELINE_METRICS),
    ]
    for count, row in results["calibration"].items():
        lines.append(f"| {count} | {_fmt(row['simct'])} | " + " | ".join(_fmt(row[m]) for m in BASELINE_METRICS) + " |")
    lines += [
        "",
        "## Power at alpha 0.05 (SimCT vs single-metric paired t-tests on the same samples)",
        "",
        "| change | group | target | prompts | SimCT | " + " | ".join(BASELINE_METRICS) + " |",
        "|---|---|---|---|---|" + "---|" * len(BASELINE_METRICS),
    ]
    for change, by_count in results["power"].items():
        severity = SEVERITY[change]
        target_n, target = TARGET_POWER[severity]
        for count, row in by_count.items():
            mark = "*" if row["prompts_resampled"] else ""
            goal = f">= {target} at {target_n}" if int(count) == target_n else ""
            lines.append(
                f"| {change} | {severity} | {goal} | {count}{mark} | **{_fmt(row['simct'])}** | "
                + " | ".join(_fmt(row[m]) for m in BASELINE_METRICS)
                + " |"
            )
    lines += [
        "",
        "## Effect size (mean / sd over prompts of the per-prompt statistic)",
        "",
        "| change | SimCT | " + " | ".join(BASELINE_METRICS) + " |",
        "|---|---|" + "---|" * len(BASELINE_METRICS),
    ]
    for change, row in results["effect_size"].items():
        lines.append(
            f"| {change} | {_fmt(row['simct'])} | " + " | ".join(_fmt(row[m]) for m in BASELINE_METRICS) + " |"
        )
    lines += [
        "",
        "## Response-wise AUROC (per prompt: changed deployment vs same deployment)",
        "",
        "| change | group | sampled, k=3 | chrF only, k=3 | greedy, k=1 |",
        "|---|---|---|---|---|",
    ]
    for change, row in results["response_auroc"].items():
        lines.append(
            f"| {change} | {SEVERITY[change]} | {_fmt(row['sampled_k3'])} | {_fmt(row['sampled_k3_chrf_only'])} "
            f"| {_fmt(row['greedy_k1'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
