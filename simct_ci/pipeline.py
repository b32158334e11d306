"""The one-way flow of a run: config -> responses -> comparisons -> report. No room here calls back."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

from simct_ci.collect import ResponseCache, collect_stage
from simct_ci.compare import GateSettings, compare
from simct_ci.config import Config
from simct_ci.model import BundledModel, ModelCard
from simct_ci.report import Report, StageReport
from simct_ci.responses import StageResponses
from simct_ci.verdicts import INCOMPLETE, Comparison

RESPONSES_DIR = "responses"


def collect_all(config: Config, out_dir: Path, cache: ResponseCache) -> dict[str, StageResponses]:
    """Every stage's responses, each written to out_dir/responses/<stage>.jsonl as they arrive."""
    return {
        stage.name: collect_stage(
            stage,
            config.prompts,
            config.sampling,
            responses_path=out_dir / RESPONSES_DIR / f"{stage.name}.jsonl",
            cache=cache,
        )
        for stage in config.stages
    }


def compare_all(config: Config, responses: dict[str, StageResponses], model: BundledModel) -> list[Comparison]:
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
    expected = len(config.prompts) * config.sampling.samples
    failed = max(len(reference.failures), len(candidate.failures))
    if not expected or failed / expected <= config.gate.max_failed_ratio:
        return comparison
    reason = (
        f"{failed} of {expected} requests failed on one side, more than {config.gate.max_failed_ratio:.0%}; "
        "see the failures below"
    )
    return replace(comparison, model_wise=replace(comparison.model_wise, verdict=INCOMPLETE, note=reason))


def build_report(
    config: Config, config_id: str, responses: dict[str, StageResponses], comparisons: list[Comparison], card: ModelCard
) -> Report:
    stages = tuple(
        StageReport(comparison, responses[config.reference], responses[comparison.candidate])
        for comparison in comparisons
    )
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return Report(stages, card.info, config_id, created)


def run(config: Config, config_id: str, out_dir: Path, cache: ResponseCache, card: ModelCard) -> Report:
    """The whole job but publishing: the model is loaded only once the responses are in."""
    responses = collect_all(config, out_dir, cache)
    comparisons = compare_all(config, responses, BundledModel(card))
    return build_report(config, config_id, responses, comparisons, card)
