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

    null_centred: np.ndarray  # one per 3/3 split of the 6 reference samples
    null_score: np.ndarray
    null_baseline: dict[str, np.ndarray]
    centred: dict[str, np.ndarray] = field(default_factory=dict)  # change -> one per choice of 3 reference samples
    score: dict[str, np.ndarray] = field(default_factory=dict)
    baseline: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    greedy_null: float = float("nan")
    greedy_score: dict[str, float] = field(default_factory=dict)


def _halves(items: Sequence[int]) -> list[tuple[list[int], list[int]]]:
    items = list(items)
    return [
        (list(first), [i for i in items if i not in first]) for first in itertools.combinations(items, len(items) // 2)
    ]


def _split_rows(rows: PromptRows, pooled: Sequence[int]) -> np.ndarray:
    """Feature rows of every split of `pooled`; the first len(pooled)//2 indices form the observed reference."""
    return np.vstack([rows.row(ref, cand, 0, "", "").features for ref, cand in _halves(pooled)])


def _baseline(features: np.ndarray) -> dict[str, np.ndarray]:
    """Within-reference minus cross-stage similarity, the single-metric statistic, for each split row."""
    return {
        m: features[:, FEATURE_NAMES.index(f"within_ref_{m}")] - features[:, FEATURE_NAMES.index(f"cross_{m}")]
        for m in BASELINE_METRICS
    }


def _centred(scores: np.ndarray) -> tuple[float, float]:
    return float(scores[0]), float(scores[0] - scores.mean())


def evaluate_prompt(rows: PromptRows, null_model: BundledModel, change_models: dict) -> PromptEval:
    reference = rows.indices(REFERENCE)
    null_features = _split_rows(rows, reference)
    null_scores = null_model.score(null_features)
    evaluation = PromptEval(
        null_centred=null_scores - null_scores.mean(), null_score=null_scores, null_baseline=_baseline(null_features)
    )
    choices = list(itertools.combinations(reference, K))
    for change, model in change_models.items():
        changed = rows.indices(change)[:K]
        features = [_split_rows(rows, [*choice, *changed]) for choice in choices]
        pairs = [_centred(model.predict(f)) for f in features]
        evaluation.score[change] = np.array([p for p, _ in pairs])
        evaluation.centred[change] = np.array([c for _, c in pairs])
        evaluation.baseline[change] = {
            m: np.array([_baseline(f[:1])[m][0] for f in features]) for m in BASELINE_METRICS
        }
        greedy = f"{change}@greedy"
        first, rerun = rows.indices(GREEDY_REFERENCE)[:2]
        if greedy in rows.prompt.responses:
            evaluation.greedy_score[change] = float(
                model.predict(rows.row([first], rows.indices(greedy)[:1], 1, change, "greedy").features[None, :])[0]
            )
    first, rerun = rows.indices(GREEDY_REFERENCE)[:2]
    evaluation.greedy_null = float(null_model.score(rows.row([first], [rerun], 0, "", "").features[None, :])[0])
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
    null_model = BundledModel.load()
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
        "model": null_model.info.short,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    DOC.write_text(render(results))
    print(DOC.read_text())


def summarise(evaluations: list[PromptEval], rng: random.Random, reps: int) -> dict:
    n = len(evaluations)

    def null_draw(statistic):
        def draw(i):
            values = statistic(evaluations[i])
            return values[rng.randrange(len(values))]

        return draw

    calibration = {}
    for count in PROMPT_COUNTS:
        row = {"simct": rejection_rate(null_draw(lambda e: e.null_centred), count, n, reps, rng)[0]}
        for m in BASELINE_METRICS:
            row[m] = rejection_rate(null_draw(lambda e, m=m: e.null_baseline[m]), count, n, reps, rng)[0]
        calibration[str(count)] = row

    power, effects, response_auroc = {}, {}, {}
    for change in ALL_CHANGES:
        power[change] = {}
        for count in PROMPT_COUNTS:
            row = {}
            rate, replaced = rejection_rate(null_draw(lambda e, c=change: e.centred[c]), count, n, reps, rng)
            row["simct"] = rate
            for m in BASELINE_METRICS:
                row[m] = rejection_rate(null_draw(lambda e, c=change, m=m: e.baseline[c][m]), count, n, reps, rng)[0]
            row["prompts_resampled"] = replaced
            power[change][str(count)] = row
        effects[change] = {"simct": effect_size(np.array([e.centred[change].mean() for e in evaluations]))}
        for m in BASELINE_METRICS:
            effects[change][m] = effect_size(np.array([e.baseline[change][m].mean() for e in evaluations]))
        positives = np.concatenate([e.score[change] for e in evaluations])
        negatives = np.concatenate([e.null_score for e in evaluations])
        chrf_pos = np.concatenate([e.baseline[change]["chrf"] for e in evaluations])
        chrf_neg = np.concatenate([e.null_baseline["chrf"] for e in evaluations])
        greedy_pos = [e.greedy_score[change] for e in evaluations if change in e.greedy_score]
        response_auroc[change] = {
            "sampled_k3": auroc(positives, negatives),
            "sampled_k3_chrf_only": auroc(chrf_pos, chrf_neg),
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
