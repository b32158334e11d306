"""The report room: a finished run as data -> the versioned report.json and Markdown rendered from `templates/`.

It only reads what the engine decided (`Comparison`) and what was collected (`StageResponses`): no statistics,
no HTTP. All hostile text goes through the `sanitize` filters inside the templates.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from simct_ci import sanitize
from simct_ci.responses import StageResponses
from simct_ci.verdicts import CONSISTENT, INCOMPLETE, INCONSISTENT, Comparison, ModelInfo, PromptScore

REPORT_VERSION = 1
COMMENT_LIMIT = 65_536  # GitHub's maximum comment body, in characters
SUMMARY_LIMIT = 1_048_576  # GitHub's maximum step summary, in bytes
COMMENT_BUDGET = 65_000  # counted in UTF-16 code units (never fewer than characters), with room to spare
SUMMARY_BUDGET = 1_000_000  # counted in UTF-8 bytes
TEMPLATES_ENV = "SIMCT_TEMPLATES_DIR"
HISTOGRAM_BINS = 10
VERDICT_EMOJI = {CONSISTENT: "✅", INCONSISTENT: "❌", INCOMPLETE: "⚠️"}


@dataclass(frozen=True)
class StageReport:
    """One tested stage: the engine's comparison and the responses both sides gave."""

    comparison: Comparison
    reference_responses: StageResponses
    candidate_responses: StageResponses


@dataclass(frozen=True)
class Report:
    stages: tuple[StageReport, ...]
    model: ModelInfo
    config_id: str
    created_at: str  # ISO 8601, set by the caller so reports are reproducible in tests

    @property
    def verdict(self) -> str:
        """Worst stage wins; no stage, or a verdict this code does not know, is never consistent."""
        verdicts = {stage.comparison.verdict for stage in self.stages}
        if INCONSISTENT in verdicts:
            return INCONSISTENT
        return CONSISTENT if verdicts == {CONSISTENT} else INCOMPLETE


# --- report.json ---------------------------------------------------------------------------------------------


def _failure_rows(stage: StageReport) -> list[dict[str, Any]]:
    return [
        {"stage": side.stage, "prompt_id": f.prompt_id, "sample": f.sample, "error": f.error}
        for side in (stage.reference_responses, stage.candidate_responses)
        for f in side.failures
    ]


def _stage_to_dict(stage: StageReport) -> dict[str, Any]:
    comparison, model_wise = stage.comparison, stage.comparison.model_wise
    return {
        "stage": comparison.candidate,
        "reference": comparison.reference,
        "verdict": comparison.verdict,
        "signature": comparison.signature,
        "samples": comparison.samples,
        "model_wise": {
            "test": model_wise.test,
            "statistic": model_wise.statistic,
            "p_value": model_wise.p_value,
            "effect_size": model_wise.effect_size,
            "alpha": model_wise.alpha,
            "n_prompts": model_wise.n_prompts,
            "note": model_wise.note,
            "components": [
                {
                    "name": c.name,
                    "alternative": c.alternative,
                    "statistic": c.statistic,
                    "p_value": c.p_value,
                    "effect_size": c.effect_size,
                }
                for c in model_wise.components
            ],
        },
        "response_wise": {
            "inconsistent_ratio": comparison.inconsistent_ratio,
            "prompts": [
                {
                    "prompt_id": p.prompt_id,
                    "p_inconsistent": p.p_inconsistent,
                    "inconsistent": p.inconsistent,
                    "centred": p.centred,
                }
                for p in comparison.prompts
            ],
        },
        "missing_prompts": list(comparison.missing),
        "failures": _failure_rows(stage),
    }


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither); lone surrogates become '?' (UTF-8 cannot hold them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def report_to_dict(report: Report) -> dict[str, Any]:
    """The versioned report.json: add fields freely, bump REPORT_VERSION before renaming or dropping one."""
    return _json_safe(
        {
            "version": REPORT_VERSION,
            "verdict": report.verdict,
            "created_at": report.created_at,
            "config": report.config_id,
            "model": {
                "version": report.model.version,
                "sha256": report.model.sha256,
                "feature_set": report.model.feature_set,
            },
            "stages": [_stage_to_dict(stage) for stage in report.stages],
        }
    )


def report_json(report: Report) -> str:
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never half of it (a cancelled run, a full disk)."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename, removed on failure
        "w", encoding="utf-8", newline="\n", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(handle.name).replace(path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_report_files(report: Report, out_dir: Path, *, markdown: str) -> tuple[Path, Path]:
    """Write `report.json` and `report.md` (the given Markdown) atomically; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    _write_atomic(json_path, report_json(report))
    _write_atomic(md_path, markdown)
    return json_path, md_path


# --- views: what the templates show, prepared once per rendering ------------------------------------------------


@dataclass(frozen=True)
class Detail:
    """How much a rendering shows. Renderers step down a ladder of these until the text fits its limit."""

    excerpt: int  # characters per response shown; 0 drops responses
    examples: int  # most inconsistent prompts shown per stage
    samples: int  # responses per side per example
    prompt_rows: int  # rows of the per-prompt score table
    failure_rows: int  # failures listed per stage
    stage_rows: int  # stages listed in tables, notes and signatures
    charts: int  # stages with a score-distribution chart


@dataclass(frozen=True)
class Example:
    """One prompt with both sides' responses, for the side-by-side blocks."""

    score: PromptScore
    prompt: str
    reference: tuple[str, ...]
    candidate: tuple[str, ...]


@dataclass(frozen=True)
class FailureRow:
    stage: str
    prompt_id: str
    sample: int
    error: str


@dataclass(frozen=True)
class StageView:
    comparison: Comparison
    examples: tuple[Example, ...]  # most inconsistent first, as many as any Detail may show
    ranked: tuple[PromptScore, ...]  # every score, most inconsistent first
    prompt_texts: dict[str, str]
    histogram: tuple[int, ...]  # prompts per p_inconsistent bin of width 1 / HISTOGRAM_BINS
    failures: tuple[FailureRow, ...]

    @property
    def n_scored(self) -> int:
        return sum(self.histogram)

    @property
    def n_inconsistent(self) -> int:
        return sum(p.inconsistent for p in self.comparison.prompts)


def _rank_key(score: PromptScore) -> tuple[float, str]:
    # A score that is not a number ranks last: it says nothing about inconsistency.
    p = score.p_inconsistent
    return (-p if math.isfinite(p) else math.inf, score.prompt_id)


def histogram(scores: Iterable[PromptScore], bins: int = HISTOGRAM_BINS) -> tuple[int, ...]:
    """Counts of p_inconsistent per equal-width bin over [0, 1] (1.0 in the last bin); non-finite skipped."""
    counts = [0] * bins
    for score in scores:
        if math.isfinite(score.p_inconsistent):
            counts[min(max(int(score.p_inconsistent * bins), 0), bins - 1)] += 1
    return tuple(counts)


def _stage_view(stage: StageReport, max_examples: int) -> StageView:
    ranked = tuple(sorted(stage.comparison.prompts, key=_rank_key))
    reference = stage.reference_responses.texts_by_prompt()
    candidate = stage.candidate_responses.texts_by_prompt()
    prompt_texts = {r.prompt_id: r.prompt for r in stage.reference_responses.responses}
    prompt_texts.update({r.prompt_id: r.prompt for r in stage.candidate_responses.responses})
    examples = tuple(
        Example(
            score=score,
            prompt=prompt_texts.get(score.prompt_id, ""),
            reference=tuple(reference.get(score.prompt_id, ())),
            candidate=tuple(candidate.get(score.prompt_id, ())),
        )
        for score in ranked[:max_examples]
    )
    failures = tuple(FailureRow(**row) for row in _failure_rows(stage))
    return StageView(stage.comparison, examples, ranked, prompt_texts, histogram(ranked), failures)


# --- rendering ---------------------------------------------------------------------------------------------------


def templates_dir() -> Path:
    override = os.environ.get(TEMPLATES_ENV)
    return Path(override) if override else Path(__file__).resolve().parent.parent / "templates"


def format_p_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def format_number(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def format_percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.0%}"


def make_environment(directory: Path | None = None) -> Environment:
    # trim_blocks/lstrip_blocks: block tags on their own lines leave no stray blank lines in the Markdown.
    env = Environment(
        loader=FileSystemLoader(directory or templates_dir()),
        autoescape=False,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        fenced=sanitize.fenced,
        inline=sanitize.inline,
        code_span=sanitize.code_span,
        mermaid_label=sanitize.mermaid_label,
        p_value=format_p_value,
        number=format_number,
        percent=format_percent,
    )
    env.globals.update(emoji=VERDICT_EMOJI, bins=HISTOGRAM_BINS, version=REPORT_VERSION)
    return env


ALL = 1_000_000  # no cap
# Richest first; the last level has no code block or <details>, so cutting it at a line end breaks nothing.
COMMENT_LADDER = (
    Detail(excerpt=1000, examples=5, samples=3, prompt_rows=0, failure_rows=5, stage_rows=50, charts=10),
    Detail(excerpt=1000, examples=5, samples=1, prompt_rows=0, failure_rows=5, stage_rows=50, charts=10),
    Detail(excerpt=300, examples=5, samples=1, prompt_rows=0, failure_rows=5, stage_rows=50, charts=10),
    Detail(excerpt=0, examples=5, samples=0, prompt_rows=0, failure_rows=5, stage_rows=50, charts=10),
    Detail(excerpt=0, examples=0, samples=0, prompt_rows=0, failure_rows=0, stage_rows=50, charts=0),
    Detail(excerpt=0, examples=0, samples=0, prompt_rows=0, failure_rows=0, stage_rows=10, charts=0),
)
SUMMARY_LADDER = (
    Detail(excerpt=4000, examples=10, samples=ALL, prompt_rows=ALL, failure_rows=ALL, stage_rows=ALL, charts=ALL),
    Detail(excerpt=1000, examples=10, samples=ALL, prompt_rows=ALL, failure_rows=ALL, stage_rows=ALL, charts=ALL),
    Detail(excerpt=300, examples=10, samples=1, prompt_rows=ALL, failure_rows=ALL, stage_rows=ALL, charts=ALL),
    Detail(excerpt=300, examples=10, samples=1, prompt_rows=ALL, failure_rows=100, stage_rows=ALL, charts=ALL),
    Detail(excerpt=0, examples=10, samples=0, prompt_rows=ALL, failure_rows=20, stage_rows=ALL, charts=ALL),
    Detail(excerpt=0, examples=10, samples=0, prompt_rows=1_000, failure_rows=20, stage_rows=ALL, charts=ALL),
    Detail(excerpt=0, examples=10, samples=0, prompt_rows=200, failure_rows=20, stage_rows=1_000, charts=20),
    Detail(excerpt=0, examples=0, samples=0, prompt_rows=0, failure_rows=0, stage_rows=100, charts=0),
)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _utf8_bytes(text: str) -> int:
    return len(text.encode("utf-8"))


def _within(chunks: Iterable[str], size: Callable[[str], int], budget: int) -> str | None:
    """The joined text if it stays within `budget`; stops rendering as soon as it cannot (huge reports)."""
    parts, used = [], 0
    for chunk in chunks:
        used += size(chunk)
        if used > budget:
            return None
        parts.append(chunk)
    return "".join(parts)


def _fit(
    render: Callable[[Detail, bool], Iterable[str]],
    ladder: tuple[Detail, ...],
    size: Callable[[str], int],
    budget: int,
    cut_note: str,
) -> str:
    """The richest rendering under `budget`; failing all, the leanest one cut at a line end, plus `cut_note`."""
    for level, detail in enumerate(ladder):
        text = _within(render(detail, level > 0), size, budget)
        if text is not None:
            return text
    room = budget - size(cut_note) - 1
    kept = []
    for line in "".join(render(ladder[-1], True)).splitlines(keepends=True):
        room -= size(line)
        if room < 0:
            break
        kept.append(line)
    return "".join(kept) + "\n" + cut_note


@lru_cache(maxsize=8)
def _environment(directory: Path) -> Environment:
    # One per templates folder: compiling the templates costs more than rendering a small report.
    return make_environment(directory)


def _validate_marker(marker: str) -> None:
    # The caller's lookup finds the comment by this exact line; a newline or an unclosed comment would hide the body.
    if "\n" in marker or "\r" in marker or not (marker.startswith("<!--") and marker.endswith("-->")):
        raise ValueError(f"the comment marker must be one HTML comment on one line, got {marker!r}")
    if "-->" in marker[4:-3] or "<!--" in marker[4:]:
        raise ValueError(f"the comment marker must be one HTML comment, got {marker!r}")


def _render(
    template: str, report: Report, views: list[StageView], run_url: str | None, **extra: Any
) -> Callable[[Detail, bool], Iterable[str]]:
    tpl = _environment(templates_dir()).get_template(template)

    def render(detail: Detail, truncated: bool) -> Iterable[str]:
        return tpl.generate(
            report=report, stages=views, detail=detail, truncated=truncated, run_url=sanitize.safe_url(run_url), **extra
        )

    return render


def _cut_note(limit_name: str, run_url: str | None) -> str:
    template = _environment(templates_dir()).get_template("_cut_note.md.j2")
    return template.render(limit=limit_name, run_url=sanitize.safe_url(run_url))


def render_comment(report: Report, *, marker: str, run_url: str | None) -> str:
    """Markdown for the sticky PR comment: `marker` on line 1, always under GitHub's 65,536 characters."""
    _validate_marker(marker)
    max_examples = max(d.examples for d in COMMENT_LADDER)
    views = [_stage_view(stage, max_examples) for stage in report.stages]
    render = _render("comment.md.j2", report, views, run_url, marker=marker)
    note = _cut_note("65,536 characters", run_url)
    return _fit(render, COMMENT_LADDER, _utf16_units, COMMENT_BUDGET, note)


def render_summary(report: Report, *, run_url: str | None) -> str:
    """Markdown for the job summary (every prompt's score, every failure), always under 1 MiB."""
    max_examples = max(d.examples for d in SUMMARY_LADDER)
    views = [_stage_view(stage, max_examples) for stage in report.stages]
    render = _render("summary.md.j2", report, views, run_url)
    note = _cut_note("1 MiB", run_url)
    return _fit(render, SUMMARY_LADDER, _utf8_bytes, SUMMARY_BUDGET, note)
