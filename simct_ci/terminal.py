"""The run's local outputs: report.json and report.md on disk, and a verdict table on the terminal."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from simct_ci.report import Report, render_summary, write_report_files
from simct_ci.verdicts import CONSISTENT, INCONSISTENT

_STYLE = {CONSISTENT: "green", INCONSISTENT: "bold red"}
LOG_WIDTH = 120


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    markdown: Path


def write_and_show(report: Report, out_dir: Path, console: Console | None = None) -> ReportPaths:
    json_path, markdown_path = write_report_files(report, out_dir, markdown=render_summary(report, run_url=None))
    # Without a terminal rich assumes 80 columns and cuts stage names and verdicts in CI logs.
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else LOG_WIDTH)
    console.print(verdict_table(report))
    for stage in report.stages:
        if stage.comparison.model_wise.note:
            console.print(f"[dim]{stage.comparison.candidate}: {stage.comparison.model_wise.note}[/]", markup=True)
    style = _STYLE.get(report.verdict, "yellow")
    console.print(f"verdict: [{style}]{report.verdict}[/]  report: {json_path}")
    return ReportPaths(json_path, markdown_path)


def _number(value: float, digits: str = ".3g") -> str:
    return "–" if value is None or math.isnan(value) else format(value, digits)


def verdict_table(report: Report) -> Table:
    table = Table(title=f"SimCT against {report.stages[0].comparison.reference}" if report.stages else "SimCT")
    for column in ("stage", "verdict", "p-value", "effect size", "prompts", "inconsistent prompts", "failed"):
        table.add_column(column)
    for stage in report.stages:
        comparison = stage.comparison
        result = comparison.model_wise
        failed = len(stage.candidate_responses.failures) + len(stage.reference_responses.failures)
        table.add_row(
            comparison.candidate,
            f"[{_STYLE.get(comparison.verdict, 'yellow')}]{comparison.verdict}[/]",
            _number(result.p_value),
            _number(result.effect_size, ".2f"),
            str(result.n_prompts),
            f"{comparison.inconsistent_ratio:.0%}",
            str(failed),
        )
    return table
