"""Publish a finished report to GitHub: job summary, step outputs, annotations and the sticky PR comment.

The exit code reflects the consistency verdict, not the comment: a comment that cannot be posted (fork PR,
missing permission, GitHub down) becomes a warning and the job summary carries the report.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping

from simct_ci import github
from simct_ci.errors import SimctError
from simct_ci.report import Report, render_comment, render_summary
from simct_ci.terminal import ReportPaths
from simct_ci.verdicts import INCOMPLETE, INCONSISTENT

TOKEN_VARIABLES = ("INPUT_GITHUB_TOKEN", "GITHUB_TOKEN")


def mask_secrets(secrets: Iterable[str], env: Mapping[str, str]) -> None:
    """Register every secret with the runner before anything can print one."""
    for secret in [*secrets, *(env.get(name, "") for name in TOKEN_VARIABLES)]:
        if secret:
            github.mask(secret)


def outputs(report: Report, paths: ReportPaths, comment_url: str | None) -> dict[str, str]:
    p_values = {
        s.comparison.candidate: None if math.isnan(s.comparison.model_wise.p_value) else s.comparison.model_wise.p_value
        for s in report.stages
    }
    return {
        "verdict": report.verdict,
        "p-values": json.dumps(p_values),
        "report-path": str(paths.json),
        "markdown-path": str(paths.markdown),
        "comment-url": comment_url or "",
    }


def annotate(report: Report) -> None:
    for stage in report.stages:
        comparison = stage.comparison
        result = comparison.model_wise
        title = f"SimCT: {comparison.candidate} vs {comparison.reference}"
        if comparison.verdict == INCONSISTENT:
            github.annotate_error(
                f"{comparison.candidate} is inconsistent with {comparison.reference} "
                f"(p = {result.p_value:.3g}, effect size {result.effect_size:.2f}, {result.n_prompts} prompts)",
                title=title,
            )
        elif comparison.verdict == INCOMPLETE:
            github.warning(f"{comparison.candidate}: incomplete: {result.note}", title=title)


def post_comment(report: Report, context: github.GitHubContext, token: str | None) -> github.CommentOutcome | None:
    """The sticky comment on a pull request; None when there is no pull request to comment on."""
    pull_request = context.pull_request
    if pull_request is None or context.repository is None:
        return None
    if not token:
        return github.CommentOutcome("failed", None, "no github_token given; the report is in the job summary")
    marker = github.marker_for(report.config_id)
    body = render_comment(report, marker=marker, run_url=context.run_url)
    try:
        with github.GitHubClient(context.api_url, token, github.DEFAULT_RETRY) as client:
            return github.upsert_comment(client, context.repository, pull_request.number, body, marker)
    except SimctError as error:  # a malformed token, say: the gate still reports the verdict
        return github.CommentOutcome("failed", None, str(error))


def publish(report: Report, paths: ReportPaths, env: Mapping[str, str], *, comment: bool) -> bool:
    """Everything GitHub shows of this run; False when a wanted PR comment could not be posted."""
    context = github.GitHubContext.from_env(env)
    annotate(report)
    outcome = post_comment(report, context, _token(env)) if comment else None
    if outcome is not None and outcome.action == "failed":
        fork = " (pull requests from forks get a read-only token)" if context.pull_request.from_fork else ""
        github.warning(f"could not post the PR comment{fork}: {outcome.reason}; the report is in the job summary")
    if context.step_summary is not None:
        github.write_step_summary(context.step_summary, render_summary(report, run_url=context.run_url))
    if context.output is not None:
        url = outcome.url if outcome is not None else None
        github.write_outputs(context.output, outputs(report, paths, url))
    return outcome is None or outcome.action != "failed"


def _token(env: Mapping[str, str]) -> str | None:
    return next((env[name] for name in TOKEN_VARIABLES if env.get(name)), None)
