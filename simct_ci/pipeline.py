"""The one-way flow of a run: config -> responses -> comparisons -> report. No room here calls back.

Only what collection needs is imported up front. The engine (numpy, scipy, sacrebleu, rapidfuzz, LightGBM) and
the report (Jinja2) are imported once the responses are in, so a run's first request leaves without waiting
for them (tests/test_startup_imports.py holds this).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from simct_ci.collect import ResponseCache, collect_stage
from simct_ci.config import Config, Sampling
from simct_ci.protocol import reference_samples
from simct_ci.responses import StageResponses
from simct_ci.verdicts import INCOMPLETE, Comparison

if TYPE_CHECKING:
    from simct_ci.model import BundledModel, ModelCard
    from simct_ci.report import Report

RESPONSES_DIR = "responses"


def stage_sampling(config: Config, stage: str) -> Sampling:
    """The sampling a stage is collected with: the config's, and reference_samples() for the reference."""
    if stage != config.reference:
        return config.sampling
    return replace(config.sampling, samples=reference_samples(config.sampling.samples))


def collect_all(config: Config, out_dir: Path, cache: ResponseCache) -> dict[str, StageResponses]:
    """Every stage's responses, each written to out_dir/responses/<stage>.jsonl as they arrive."""
    return {
        stage.name: collect_stage(
            stage,
            config.prompts,
            stage_sampling(config, stage.name),
            responses_path=out_dir / RESPONSES_DIR / f"{stage.name}.jsonl",
            cache=cache,
        )
        for stage in config.stages
    }


def compare_all(config: Config, responses: dict[str, StageResponses], model: BundledModel) -> list[Comparison]:
    from simct_ci.compare import GateSettings, compare

    settings = GateSettings(config.gate.alpha, config.gate.min_prompts, config.gate.max_failed_ratio)
    reference = responses[config.reference]
    comparisons = []
    for stage in config.candidates:
        comparison = compare(
            reference.texts_by_prompt(),
            responses[stage.name].texts_by_prompt(),
            config.prompts,
            model,
            samples=config.sampling.samples,
            greedy=config.sampling.temperature == 0,
            settings=settings,
            names=(config.reference, stage.name),
        )
        comparisons.append(_incomplete_if_requests_failed(comparison, config, reference, responses[stage.name]))
    return comparisons


def _incomplete_if_requests_failed(
    comparison: Comparison, config: Config, reference: StageResponses, candidate: StageResponses
) -> Comparison:
    """Too many failed requests on either side leave too little evidence: never call that consistent."""
    if not too_many_failures(config, (reference, candidate)):
        return comparison
    shares = [_failed_of_expected(config, side) for side in (reference, candidate)]
    failed, expected = max(shares, key=lambda share: share[0] / share[1] if share[1] else 0.0)
    reason = (
        f"{failed} of {expected} requests failed on one side, more than {config.gate.max_failed_ratio:.0%}; "
        "see the failures below"
    )
    return replace(comparison, model_wise=replace(comparison.model_wise, verdict=INCOMPLETE, note=reason))


def too_many_failures(config: Config, stages: Iterable[StageResponses]) -> bool:
    """More of some stage's requests failed than the gate allows (config.gate.max_failed_ratio)."""
    for stage in stages:
        failed, expected = _failed_of_expected(config, stage)
        if expected and failed / expected > config.gate.max_failed_ratio:
            return True
    return False


def _failed_of_expected(config: Config, stage: StageResponses) -> tuple[int, int]:
    return len(stage.failures), len(config.prompts) * stage_sampling(config, stage.stage).samples


def build_report(
    config: Config, config_id: str, responses: dict[str, StageResponses], comparisons: list[Comparison], card: ModelCard
) -> Report:
    from simct_ci.report import Report, StageReport

    stages = tuple(
        StageReport(comparison, responses[config.reference], responses[comparison.candidate])
        for comparison in comparisons
    )
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return Report(stages, card.info, config_id, created)


def evaluate(config: Config, config_id: str, responses: dict[str, StageResponses], card: ModelCard) -> Report:
    """Everything after collection: the model is loaded only now that the responses are in."""
    from simct_ci.model import BundledModel

    comparisons = compare_all(config, responses, BundledModel(card))
    return build_report(config, config_id, responses, comparisons, card)


def run(config: Config, config_id: str, out_dir: Path, cache: ResponseCache, card: ModelCard) -> Report:
    """The whole job but publishing."""
    return evaluate(config, config_id, collect_all(config, out_dir, cache), card)
