"""The one-way flow of a run: config -> responses -> comparisons -> report. No room here calls back.

Only what collection needs is imported up front. The engine (numpy, scipy, sacrebleu, rapidfuzz, LightGBM) and
the report (Jinja2) are imported once the responses are in, so a run's first request leaves without waiting
for them (tests/test_startup_imports.py holds this).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from simct_ci.collect import ResponseCache, collect_stage
from simct_ci.config import Config, Sampling, StageConfig
from simct_ci.protocol import reference_samples
from simct_ci.recorded import read_recorded, write_recorded
from simct_ci.responses import Prompt, StageResponses
from simct_ci.verdicts import INCOMPLETE, INCONSISTENT, Comparison

if TYPE_CHECKING:
    from simct_ci.compare import GateSettings
    from simct_ci.model import BundledModel, ModelCard
    from simct_ci.report import Report

RESPONSES_DIR = "responses"


def stage_sampling(config: Config, stage: str) -> Sampling:
    """The sampling a stage is collected with: the config's, and reference_samples() for the reference.

    A candidate's seeds start after the reference's, so that a server that honours seeds gives a same-deployment
    candidate fresh samples, independent of the reference's, as the paired test assumes. Shared seeds would
    repeat the reference's own samples: the test would then see a candidate closer to the reference than its
    held-back samples are, and a subtle change would hide behind the shared randomness.
    """
    sampling, reference = config.sampling, reference_samples(config.sampling.samples)
    if stage == config.reference:
        return replace(sampling, samples=reference)
    return sampling if sampling.seed is None else replace(sampling, seed=sampling.seed + reference)


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


def gate_settings(config: Config, fractions: tuple[float, ...] = ()) -> GateSettings:
    from simct_ci.compare import GateSettings

    gate = config.gate
    spending = gate.sequential.spending if gate.sequential else ""
    return GateSettings(
        gate.test, gate.alpha, gate.min_prompts, gate.max_failed_ratio, gate.mode, gate.margin, fractions, spending
    )


def compare_all(
    config: Config,
    responses: dict[str, StageResponses],
    model: BundledModel,
    candidates: Sequence[StageConfig] | None = None,
    settings: GateSettings | None = None,
) -> list[Comparison]:
    """Each candidate (all of the config's by default) against the reference, on config.prompts."""
    from simct_ci.compare import compare

    settings = settings or gate_settings(config)
    reference = responses[config.reference]
    comparisons = []
    for stage in config.candidates if candidates is None else candidates:
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
    if config.gate.sequential is None:
        return evaluate(config, config_id, collect_all(config, out_dir, cache), card)
    from simct_ci.model import BundledModel

    responses, comparisons = run_sequential(config, out_dir, cache, BundledModel(card))
    return build_report(config, config_id, responses, comparisons, card)


# --- sequential mode ---------------------------------------------------------------------------------------


def look_sizes(n_prompts: int, looks: int) -> list[int]:
    """Prompts in hand at each look: near-equal consecutive batches, the last look holding every prompt."""
    return sorted({max(1, round(n_prompts * (j + 1) / looks)) for j in range(looks)})


def run_sequential(
    config: Config, out_dir: Path, cache: ResponseCache, model: BundledModel
) -> tuple[dict[str, StageResponses], list[Comparison]]:
    """Query prompts batch by batch; after each batch test every stage still open, and close a stage as soon as
    it is shown inconsistent (alpha-spending keeps the false-positive rate at alpha). A stage that is never
    shown inconsistent is decided on every prompt, exactly as without sequential mode."""
    sizes = look_sizes(len(config.prompts), config.gate.sequential.looks)
    fractions = tuple(size / len(config.prompts) for size in sizes)
    collected: dict[str, StageResponses] = {}
    decided: dict[str, Comparison] = {}
    for look, size in enumerate(sizes):
        batch = config.prompts[sizes[look - 1] if look else 0 : size]
        open_stages = [stage for stage in config.candidates if stage.name not in decided]
        if not open_stages:  # every stage is decided: querying the reference further would be wasted
            break
        for stage in [config.stage(config.reference), *open_stages]:
            batch_responses = _collect_batch(config, stage, batch, out_dir, cache, first=look == 0)
            collected[stage.name] = _extend(collected.get(stage.name), batch_responses)
        in_hand = replace(config, prompts=config.prompts[:size])
        settings = gate_settings(config, fractions[: look + 1])
        for comparison in compare_all(in_hand, collected, model, open_stages, settings):
            if comparison.verdict == INCONSISTENT or look == len(sizes) - 1:
                decided[comparison.candidate] = _with_look_note(comparison, look, sizes, len(config.prompts))
    return collected, [decided[stage.name] for stage in config.candidates]


def _collect_batch(
    config: Config, stage: StageConfig, batch: Sequence[Prompt], out_dir: Path, cache: ResponseCache, *, first: bool
) -> StageResponses:
    """One batch, written as it arrives to a part file; the stage's full file is rewritten from the parts."""
    final = out_dir / RESPONSES_DIR / f"{stage.name}.jsonl"
    part = final.with_name(f"{final.name}.part")  # never <name>.jsonl: a stage may be named "<other>.part"
    responses = collect_stage(stage, batch, stage_sampling(config, stage.name), responses_path=part, cache=cache)
    if not (stage.is_recorded and final.resolve() == stage.responses.resolve()):  # never overwrite a recorded source
        previous = () if first else read_recorded(final)  # a file left by an earlier run is replaced, not extended
        write_recorded(final, (*previous, *responses.responses))
    part.unlink(missing_ok=True)
    return responses


def _extend(before: StageResponses | None, batch: StageResponses) -> StageResponses:
    if before is None:
        return batch
    return StageResponses(batch.stage, (*before.responses, *batch.responses), (*before.failures, *batch.failures))


def _with_look_note(comparison: Comparison, look: int, sizes: Sequence[int], total: int) -> Comparison:
    if look == len(sizes) - 1:
        note = f"sequential: decided at the last look, on all {total} prompts"
    else:
        note = f"sequential: stopped at look {look + 1} of {len(sizes)}, after {sizes[look]} of {total} prompts"
    model_wise = comparison.model_wise
    joined = f"{model_wise.note}; {note}" if model_wise.note else note
    return replace(comparison, model_wise=replace(model_wise, note=joined))
