"""The report: report.json says what the engine decided, the comment and summary show it, files land atomically."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simct_ci import report as report_module
from simct_ci.report import (
    REPORT_VERSION,
    Report,
    StageReport,
    histogram,
    render_comment,
    render_summary,
    report_json,
    report_to_dict,
    write_report_files,
)
from simct_ci.responses import Failure, Response, StageResponses
from simct_ci.verdicts import (
    CONSISTENT,
    INCOMPLETE,
    INCONSISTENT,
    Comparison,
    ComponentResult,
    ModelInfo,
    ModelWiseResult,
    PromptScore,
)

MARKER = "<!-- simct-action:simct.yml -->"
RUN_URL = "https://github.com/org/repo/actions/runs/42"
MODEL = ModelInfo(version="1.0.0", sha256="0123456789abcdef" * 4, feature_set="v1")


# --- builders, shared with test_hostile_content.py ------------------------------------------------------------------


def sig(samples: int = 3) -> str:
    return f"test:paired-t|alpha:0.05|samples:{samples}|features:v1|model:{MODEL.short}"


def side(stage: str, texts: dict[str, list[str]], failures: tuple[Failure, ...] = (), prompts=None) -> StageResponses:
    """Responses of one stage: prompt id -> its samples' texts."""
    prompts = prompts or {}
    return StageResponses(
        stage,
        tuple(
            Response(pid, prompts.get(pid, f"Question {pid}?"), text, i)
            for pid, samples in texts.items()
            for i, text in enumerate(samples)
        ),
        failures,
    )


def stage_report(
    candidate: str,
    scores: list[float],
    verdict: str,
    *,
    p_value: float = 0.2,
    note: str = "",
    missing: tuple[str, ...] = (),
    failures: tuple[Failure, ...] = (),
    reference: str = "bare-metal",
) -> StageReport:
    prompts = tuple(PromptScore(f"q{i}", p, p >= 0.5, p - 0.5) for i, p in enumerate(scores))
    parts = (
        ComponentResult("classifier", 1.5, p_value / 2, 0.4),
        ComponentResult("length", 0.2, 0.42, 0.05),
        ComponentResult("diversity", -0.7, 0.49, -0.1, "two-sided"),
    )
    model_wise = ModelWiseResult("paired-t", 1.5, p_value, 0.4, 0.05, len(scores), verdict, note, parts)
    comparison = Comparison(reference, candidate, 3, prompts, model_wise, missing, sig())
    texts = {p.prompt_id: [f"ref answer {p.prompt_id} #{i}" for i in range(3)] for p in prompts}
    cand = {p.prompt_id: [f"{candidate} answer {p.prompt_id} #{i}" for i in range(3)] for p in prompts}
    return StageReport(comparison, side(reference, texts), side(candidate, cand, failures))


def make_report(*stages: StageReport) -> Report:
    return Report(stages, MODEL, "simct.yml", "2025-01-02T03:04:05Z")


def three_stages() -> Report:
    consistent = stage_report("quantized", [0.1, 0.2, 0.3, 0.05], CONSISTENT, p_value=0.61)
    inconsistent = stage_report(
        "gateway",
        [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.2],
        INCONSISTENT,
        p_value=0.0004,
        failures=(Failure("q9", 1, "HTTP 503 after 5 retries"),),
    )
    incomplete = stage_report(
        "template",
        [0.4],
        INCOMPLETE,
        p_value=math.nan,
        note="only 1 prompt left after failures; at least 5 are needed",
        missing=("q1", "q2"),
    )
    return make_report(consistent, inconsistent, incomplete)


# --- a small CommonMark fence reader, shared with test_hostile_content.py -------------------------------------------

_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass
class CodeBlock:
    fence: str
    info: str
    lines: list[str] = field(default_factory=list)


def split_code(markdown: str) -> tuple[list[CodeBlock], list[str]]:
    """Fenced code blocks and the lines outside them; fails if a block is closed by another fence or left open."""
    blocks: list[CodeBlock] = []
    outside: list[str] = []
    current: CodeBlock | None = None
    for line in markdown.split("\n"):
        if current is None:
            match = _OPEN.match(line)
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                current = CodeBlock(match.group(1), match.group(2).strip())
            else:
                outside.append(line)
            continue
        char, length = current.fence[0], len(current.fence)
        if re.fullmatch(rf" {{0,3}}{re.escape(char)}{{{length},}}[ \t]*", line):
            assert line.strip() == current.fence, f"block opened with {current.fence!r} closed by {line.strip()!r}"
            blocks.append(current)
            current = None
        else:
            current.lines.append(line)
    assert current is None, f"code block opened with {current.fence!r} never closes"
    return blocks, outside


# --- verdict rules ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ((), INCOMPLETE),
        ((CONSISTENT,), CONSISTENT),
        ((CONSISTENT, CONSISTENT), CONSISTENT),
        ((CONSISTENT, INCOMPLETE), INCOMPLETE),
        ((CONSISTENT, INCONSISTENT), INCONSISTENT),
        ((INCOMPLETE, INCONSISTENT, CONSISTENT), INCONSISTENT),
        ((CONSISTENT, "something-new"), INCOMPLETE),  # an unknown verdict is never taken as consistent
    ],
)
def test_overall_verdict_is_the_worst_stage(verdicts: tuple[str, ...], expected: str) -> None:
    report = make_report(*(stage_report(f"s{i}", [0.1], v) for i, v in enumerate(verdicts)))
    assert report.verdict == expected
    assert report_to_dict(report)["verdict"] == expected


# --- report.json -----------------------------------------------------------------------------------------------------


def test_report_json_carries_every_field_with_its_value() -> None:
    data = report_to_dict(three_stages())
    assert data["version"] == REPORT_VERSION == 1
    assert data["verdict"] == INCONSISTENT
    assert data["created_at"] == "2025-01-02T03:04:05Z"
    assert data["config"] == "simct.yml"
    assert data["model"] == {"version": "1.0.0", "sha256": MODEL.sha256, "feature_set": "v1"}
    assert [s["stage"] for s in data["stages"]] == ["quantized", "gateway", "template"]

    gateway = data["stages"][1]
    assert set(gateway) == {
        "stage",
        "reference",
        "verdict",
        "signature",
        "samples",
        "model_wise",
        "response_wise",
        "missing_prompts",
        "failures",
    }
    assert gateway["reference"] == "bare-metal"
    assert gateway["verdict"] == INCONSISTENT
    assert gateway["signature"] == sig()
    assert gateway["samples"] == 3
    assert gateway["model_wise"] == {
        "test": "paired-t",
        "statistic": 1.5,
        "p_value": 0.0004,
        "effect_size": 0.4,
        "alpha": 0.05,
        "n_prompts": 7,
        "note": "",
        "components": [
            {"name": "classifier", "alternative": "greater", "statistic": 1.5, "p_value": 0.0002, "effect_size": 0.4},
            {"name": "length", "alternative": "greater", "statistic": 0.2, "p_value": 0.42, "effect_size": 0.05},
            {"name": "diversity", "alternative": "two-sided", "statistic": -0.7, "p_value": 0.49, "effect_size": -0.1},
        ],
    }
    assert gateway["response_wise"]["inconsistent_ratio"] == pytest.approx(6 / 7)
    assert gateway["response_wise"]["prompts"][0] == {
        "prompt_id": "q0",
        "p_inconsistent": 0.95,
        "inconsistent": True,
        "centred": pytest.approx(0.45),
    }
    assert gateway["failures"] == [
        {"stage": "gateway", "prompt_id": "q9", "sample": 1, "error": "HTTP 503 after 5 retries"}
    ]
    assert data["stages"][2]["missing_prompts"] == ["q1", "q2"]


def test_failures_of_both_sides_are_listed_with_their_stage() -> None:
    stage = stage_report("gateway", [0.5], INCOMPLETE)
    reference = StageResponses("bare-metal", stage.reference_responses.responses, (Failure("q0", 0, "timeout"),))
    report = make_report(StageReport(stage.comparison, reference, stage.candidate_responses))
    assert report_to_dict(report)["stages"][0]["failures"] == [
        {"stage": "bare-metal", "prompt_id": "q0", "sample": 0, "error": "timeout"}
    ]


def test_nan_and_infinities_become_null_in_strict_json() -> None:
    stage = stage_report("template", [math.nan, 0.2], INCOMPLETE, p_value=math.nan)
    model_wise = ModelWiseResult("paired-t", math.inf, math.nan, -math.inf, 0.05, 0, INCOMPLETE, "no prompts")
    broken = StageReport(
        Comparison("bare-metal", "template", 3, stage.comparison.prompts, model_wise),
        stage.reference_responses,
        stage.candidate_responses,
    )
    text = report_json(make_report(broken))

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    data = json.loads(text, parse_constant=refuse)
    assert data["stages"][0]["model_wise"]["statistic"] is None
    assert data["stages"][0]["model_wise"]["p_value"] is None
    assert data["stages"][0]["model_wise"]["effect_size"] is None
    assert data["stages"][0]["response_wise"]["prompts"][0]["p_inconsistent"] is None
    assert data["stages"][0]["response_wise"]["prompts"][0]["centred"] is None
    assert data["stages"][0]["response_wise"]["prompts"][1]["p_inconsistent"] == 0.2


def test_report_without_stages_is_incomplete_and_renders() -> None:
    report = make_report()
    assert report_to_dict(report)["stages"] == []
    comment = render_comment(report, marker=MARKER, run_url=None)
    assert "⚠️ incomplete" in comment
    assert "No stage was compared" in comment
    assert "No stage was compared" in render_summary(report, run_url=None)


# --- files -----------------------------------------------------------------------------------------------------------


def test_both_files_are_written_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    report = three_stages()
    out = tmp_path / "out" / "nested"
    (json_path, md_path) = write_report_files(report, out, markdown="# hello\n")
    assert (json_path, md_path) == (out / "report.json", out / "report.md")
    assert json.loads(json_path.read_text(encoding="utf-8")) == report_to_dict(report)
    assert md_path.read_text(encoding="utf-8") == "# hello\n"
    write_report_files(report, out, markdown="# again\n")  # replacing existing files works too
    assert md_path.read_text(encoding="utf-8") == "# again\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = three_stages()
    write_report_files(report, tmp_path, markdown="old\n")
    old_json = (tmp_path / "report.json").read_text(encoding="utf-8")

    def disk_full(self: Path, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "replace", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_report_files(make_report(), tmp_path, markdown="new\n")
    assert (tmp_path / "report.json").read_text(encoding="utf-8") == old_json
    assert (tmp_path / "report.md").read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


# --- the comment -----------------------------------------------------------------------------------------------------


def test_marker_is_the_first_line_and_appears_once() -> None:
    comment = render_comment(three_stages(), marker=MARKER, run_url=RUN_URL)
    assert comment.split("\n", 1)[0] == MARKER
    assert comment.count(MARKER) == 1
    assert comment.count("<!--") == 1


@pytest.mark.parametrize("marker", ["simct", "<!-- a -->\nb", "<!-- a --> <!-- b -->", "<!-- a"])
def test_a_marker_that_is_not_one_html_comment_is_refused(marker: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        render_comment(three_stages(), marker=marker, run_url=None)


def test_comment_shows_verdict_and_one_row_per_stage() -> None:
    comment = render_comment(three_stages(), marker=MARKER, run_url=RUN_URL)
    assert "## ❌ inconsistent" in comment.split("\n")[1]
    rows = [line for line in comment.split("\n") if line.startswith("| ") and "bare-metal" in line]
    assert rows == [
        "| quantized | bare-metal | ✅ consistent | 0.610 | 0.40 | 4 | 0% (0/4) |",
        "| gateway | bare-metal | ❌ inconsistent | < 0.001 | 0.40 | 7 | 86% (6/7) |",
        "| template | bare-metal | ⚠️ incomplete | n/a | 0.40 | 1 | 0% (0/1) |",
    ]


def test_comment_explains_incomplete_stages_and_failures() -> None:
    comment = render_comment(three_stages(), marker=MARKER, run_url=RUN_URL)
    assert "**template**: only 1 prompt left after failures; at least 5 are needed" in comment
    assert "prompts left out for too few responses: 2 (q1, q2)" in comment
    assert "| gateway | q9 | 1 | HTTP 503 after 5 retries |" in comment


def test_comment_shows_five_most_inconsistent_prompts_side_by_side_for_inconsistent_stages_only() -> None:
    comment = render_comment(three_stages(), marker=MARKER, run_url=RUN_URL)
    summaries = re.findall(r"<summary>([\d.]+) · (q\d+):", comment)
    assert summaries == [("0.95", "q0"), ("0.90", "q1"), ("0.85", "q2"), ("0.80", "q3"), ("0.75", "q4")]
    assert comment.count("<details>") == comment.count("</details>") == 5
    blocks, _ = split_code(comment)
    shown = {line for block in blocks for line in block.lines}
    for i in range(3):
        assert f"ref answer q0 #{i}" in shown
        assert f"gateway answer q0 #{i}" in shown
    assert "quantized answer" not in comment  # consistent stages get no examples in the comment
    assert "<th>reference: bare-metal</th><th>candidate: gateway</th>" in comment


def test_mermaid_charts_are_well_formed_and_count_every_scored_prompt() -> None:
    report = three_stages()
    blocks, _ = split_code(render_comment(report, marker=MARKER, run_url=RUN_URL))
    charts = [b for b in blocks if b.info == "mermaid"]
    assert len(charts) == len(report.stages)
    for chart, stage in zip(charts, report.stages, strict=True):
        lines = [line.strip() for line in chart.lines]
        assert lines[0] == "xychart-beta"
        assert lines[1] == f'title "{stage.comparison.candidate} vs bare-metal"'
        labels = re.fullmatch(r'x-axis "p_inconsistent" \[(.*)\]', lines[2]).group(1).split(", ")
        assert labels == [f'"{i / 10:.1f}-{(i + 1) / 10:.1f}"' for i in range(10)]
        counts = [int(n) for n in re.fullmatch(r"bar \[(.*)\]", lines[4]).group(1).split(", ")]
        assert counts == list(histogram(stage.comparison.prompts))
        assert sum(counts) == len(stage.comparison.prompts)
        top = int(re.fullmatch(r'y-axis "prompts" 0 --> (\d+)', lines[3]).group(1))
        assert top >= max(counts)


def test_histogram_puts_edges_in_range_and_skips_non_numbers() -> None:
    scores = [PromptScore(str(v), v, False) for v in (0.0, 0.1, 0.0999, 0.95, 1.0, 1.2, -0.1, math.nan, math.inf)]
    assert histogram(scores) == (3, 1, 0, 0, 0, 0, 0, 0, 0, 3)


def test_signature_with_model_version_is_shown_per_stage() -> None:
    report = three_stages()
    comment = render_comment(report, marker=MARKER, run_url=RUN_URL)
    summary = render_summary(report, run_url=RUN_URL)
    for stage in ("quantized", "gateway", "template"):
        line = f"<sub>Signature of {stage}: `{sig()}` · model `1.0.0+01234567`</sub>"
        assert line in comment
        assert line in summary


def test_summary_shows_each_component_of_the_model_wise_test() -> None:
    summary = render_summary(three_stages(), run_url=RUN_URL)
    assert "| ↳ classifier (one-sided, unadjusted) | 1.500 | < 0.001 | 0.40 | | | |" in summary
    assert "| ↳ length (one-sided, unadjusted) | 0.200 | 0.420 | 0.05 | | | |" in summary
    assert "| ↳ diversity (two-sided, unadjusted) | -0.700 | 0.490 | -0.10 | | | |" in summary


def test_summary_lists_every_prompt_and_every_failure() -> None:
    many = [Failure(f"q{i}", 0, f"error {i}") for i in range(40)]
    stage = stage_report("gateway", [i / 100 for i in range(100)], INCONSISTENT, failures=tuple(many))
    summary = render_summary(make_report(stage), run_url=RUN_URL)
    for i in range(100):
        assert f"| q{i} | Question q{i}? | {i / 100:.3f} |" in summary
    for i in range(40):
        assert f"| gateway | q{i} | 0 | error {i} |" in summary
    comment = render_comment(make_report(stage), marker=MARKER, run_url=RUN_URL)
    assert comment.count("| gateway | q") == 5  # the comment lists only the first few failures
    split_code(summary)


def test_a_short_report_is_not_marked_as_shortened() -> None:
    comment = render_comment(three_stages(), marker=MARKER, run_url=RUN_URL)
    assert "Shortened" not in comment
    assert "Cut here" not in comment


def test_templates_dir_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "comment.md.j2").write_text("{{ marker }}\ncustom {{ report.verdict }}\n", encoding="utf-8")
    (tmp_path / "_cut_note.md.j2").write_text("cut\n", encoding="utf-8")
    monkeypatch.setenv(report_module.TEMPLATES_ENV, str(tmp_path))
    assert render_comment(three_stages(), marker=MARKER, run_url=None) == f"{MARKER}\ncustom inconsistent\n"


def test_default_templates_dir_is_the_repository_templates_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(report_module.TEMPLATES_ENV, raising=False)
    assert report_module.templates_dir() == Path(__file__).resolve().parent.parent / "templates"
    assert (report_module.templates_dir() / "comment.md.j2").is_file()
