"""Hostile model output and prompts cannot break the comment or summary: no escaped block, no HTML, no mention,
no link, no fake marker, no workflow command, and never over GitHub's size limits."""

from __future__ import annotations

import html
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simct_ci import report as report_module
from simct_ci.report import Report, StageReport, render_comment, render_summary
from simct_ci.responses import Failure, Response, StageResponses
from simct_ci.sanitize import WORD_JOINER, code_span, fenced, inline, mermaid_label, normalise
from simct_ci.verdicts import INCONSISTENT, Comparison, ModelWiseResult, PromptScore
from tests.test_report import MARKER, MODEL, RUN_URL, sig, split_code

markdown_it = pytest.importorskip("markdown_it")  # CommonMark reference parser, installed with rich
MD = markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table")

COMMENT_LIMIT = 65_536
SUMMARY_LIMIT = 1_048_576
ALLOWED_TAGS = {"details", "summary", "table", "tr", "th", "td", "sub"}  # what the templates themselves emit

HOSTILE = {
    "backtick fences": "before\n```\nescaped?\n```python\nx = 1\n``` trailing\n````",
    "backtick runs 1-40": "\n".join("`" * n + " run" for n in range(1, 41)),
    "tilde runs 1-40": "\n".join("~" * n for n in range(1, 41)),
    "indented fences": "   ````````\n    ~~~~~~\n\t```",
    "html block escape": "</code></pre></details></td></tr></table>\n\n# Owned <b>bold</b>",
    "img onerror": "<img src=x onerror=alert(1)>",
    "script": "<script>alert(document.cookie)</script>",
    "markdown link": "[click me](http://evil.example/phish)",
    "markdown image": "![img](http://evil.example/x.png)",
    "autolinks": "<http://evil.example> http://evil.example www.evil.example mail@evil.example",
    "mentions": "@octocat please look, cc @org/team and @someone.",
    "issue references": "fixes #1, closes org/repo#2 and GH-3",
    "fake marker": MARKER + "\nok\n<!-- simct-action:other.yml -->",
    "hiding comment": "<!-- everything after this would be hidden",
    "workflow commands": "::error::pwned\n  ::add-mask::secret\n::stop-commands::token\n::set-output name=x::y",
    "line endings": "a\r\n```\r\nb\rc\r~~~",
    "control characters": "nul\x00 esc\x1b[31m bell\x07 del\x7f",
    "bidi override": "invoice \u202egnp.exe",
    "entities": "&lt;img src=x&gt; &#64;octocat &amp;",
    "table pipes": "| a | b |\n|---|---|\n| c | d |",
    "lone surrogate": "bad \udcff byte",
    "emphasis and code": "**bold** _it_ `code` ~~gone~~ \\` \\\\",
    "empty": "",
}


def hostile_report(text: str, *, stage: str = "gateway", n_prompts: int = 6) -> Report:
    """An inconsistent stage where every prompt, response, id and error is the hostile text."""
    pids = [f"{text[:40]}-{i}" for i in range(n_prompts)]
    scores = tuple(PromptScore(pid, 0.99 - i / 100, True) for i, pid in enumerate(pids))
    model_wise = ModelWiseResult("paired-t", 4.0, 1e-5, 1.2, 0.05, n_prompts, INCONSISTENT, note=text)
    comparison = Comparison("bare-metal", stage, 3, scores, model_wise, (text,), sig())

    def responses(name: str) -> StageResponses:
        return StageResponses(
            name,
            tuple(Response(pid, text, text, i) for pid in pids for i in range(3)),
            (Failure(text, 0, text),),
        )

    return Report((StageReport(comparison, responses("bare-metal"), responses(stage)),), MODEL, text, text)


def html_tags(markdown: str) -> set[str]:
    """Names of the HTML tags a CommonMark parser passes through as raw HTML."""
    tokens = MD.parse(markdown)
    raw = [t.content for t in tokens if t.type == "html_block"]
    raw += [c.content for t in tokens if t.type == "inline" for c in t.children or () if c.type == "html_inline"]
    return {name.lower() for chunk in raw for name in re.findall(r"<\s*/?\s*([A-Za-z][\w-]*)", chunk)}


def links(markdown: str) -> list[str]:
    tokens = MD.parse(markdown)
    found = [c for t in tokens if t.type == "inline" for c in t.children or ()]
    return [str(c.attrs.get("href") or c.attrs.get("src")) for c in found if c.type in ("link_open", "image")]


def assert_safe(markdown: str, *, marker: str | None) -> None:
    """Every promise the report makes about hostile content, checked on one rendering."""
    _, outside = split_code(markdown)  # every fence closes with the very fence that opened it
    text = "\n".join(outside)
    assert not re.search(r"<\s*(img|script|http|b>|code|pre)", text, re.IGNORECASE)
    for tag in ("details", "table", "tr", "td", "th", "summary", "sub"):
        assert text.count(f"<{tag}>") == text.count(f"</{tag}>"), tag
    assert html_tags(markdown) <= ALLOWED_TAGS
    assert set(links(markdown)) <= {RUN_URL}
    assert not re.search(r"@[A-Za-z0-9]", text), "a live @mention"
    assert not re.search(r"((?<!&)#|GH-)\d", text), "a live issue reference"
    assert "http://evil" not in text and "www.evil" not in text, "a bare URL GitHub would autolink"
    assert not re.search(r"^\s*::", markdown, re.MULTILINE), "a workflow command if printed to a log"
    assert "\r" not in markdown and "\x00" not in markdown and "\u202e" not in markdown
    assert markdown.count("<!--") == (1 if marker else 0)
    if marker:
        assert markdown.split("\n", 1)[0] == marker
        assert markdown.count(marker) == 1


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_text_stays_harmless_in_the_comment(name: str) -> None:
    comment = render_comment(hostile_report(HOSTILE[name]), marker=MARKER, run_url=RUN_URL)
    assert_safe(comment, marker=MARKER)
    assert "Shortened" not in comment  # small hostile text is shown, not cut away


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_text_stays_harmless_in_the_summary(name: str) -> None:
    assert_safe(render_summary(hostile_report(HOSTILE[name]), run_url=RUN_URL), marker=None)


@pytest.mark.parametrize("name", ["img onerror", "markdown link", "html block escape", "fake marker", "mentions"])
def test_hostile_responses_are_shown_verbatim_inside_code_blocks(name: str) -> None:
    comment = render_comment(hostile_report(HOSTILE[name]), marker=MARKER, run_url=RUN_URL)
    fences = [t.content for t in MD.parse(comment) if t.type == "fence" and t.info != "mermaid"]
    expected = HOSTILE[name].replace("<!--", "<!-" + WORD_JOINER + "-")
    assert len(fences) == 5 * 3 * 2  # 5 prompts, 3 samples, 2 sides
    assert all(content == expected + "\n" for content in fences)


def test_a_hostile_stage_name_stays_in_its_table_cell() -> None:
    stage = "gw<img src=x>|@octocat|[x](http://evil)"
    comment = render_comment(hostile_report("fine", stage=stage), marker=MARKER, run_url=RUN_URL)
    assert_safe(comment, marker=MARKER)
    tokens = MD.parse(comment)
    first_row = tokens[[t.type for t in tokens].index("tbody_open") + 1 :]
    cells = []
    for token in first_row:
        if token.type == "tr_close":
            break
        if token.type == "inline":
            cells.append(token.content)
    assert len(cells) == 7
    assert html.unescape(cells[0]).replace(WORD_JOINER, "") == stage


# --- size limits -----------------------------------------------------------------------------------------------------

BIG = ("``` @octocat <img src=x> [a](http://evil) ~~~~ <!-- x -->\n" * 4000)[:200_000]


def huge_report(n_prompts: int = 2000, n_stages: int = 2) -> Report:
    """2,000 prompts of 200 KB text with 3 samples of 200 KB responses a side, and a 200 KB failure per prompt."""
    stages = []
    for s in range(n_stages):
        pids = [f"prompt-{i}" for i in range(n_prompts)]
        scores = tuple(PromptScore(pid, (i % 100) / 100, i % 100 >= 50, 0.0) for i, pid in enumerate(pids))
        model_wise = ModelWiseResult("paired-t", 9.0, 1e-9, 2.0, 0.05, n_prompts, INCONSISTENT, BIG)
        comparison = Comparison("bare-metal", f"stage-{s}", 3, scores, model_wise, tuple(pids[:500]), sig())

        def responses(name: str, pids: list[str] = pids) -> StageResponses:
            failures = tuple(Failure(pid, 0, BIG) for pid in pids)  # one string object: cheap however large
            return StageResponses(name, tuple(Response(pid, BIG, BIG, i) for pid in pids for i in range(3)), failures)

        stages.append(StageReport(comparison, responses("bare-metal"), responses(f"stage-{s}")))
    return Report(tuple(stages), MODEL, "simct.yml", "2025-01-02T03:04:05Z")


def test_huge_output_is_shortened_under_the_limits_and_points_to_the_full_report() -> None:
    report = huge_report()
    started = time.perf_counter()
    comment = render_comment(report, marker=MARKER, run_url=RUN_URL)
    summary = render_summary(report, run_url=RUN_URL)
    assert time.perf_counter() - started < 20

    assert len(comment) < COMMENT_LIMIT
    assert len(comment.encode("utf-16-le")) // 2 < COMMENT_LIMIT
    assert len(summary.encode("utf-8")) < SUMMARY_LIMIT
    assert_safe(comment, marker=MARKER)
    assert_safe(summary, marker=None)
    assert f"[the workflow run]({RUN_URL})" in comment
    assert "Shortened to stay under GitHub's limit of 65,536 characters" in comment
    assert "Shortened to stay under GitHub's limit of 1 MiB" in summary
    assert "more characters)" in comment  # responses are cut with a visible note, not silently


def test_many_stages_are_listed_up_to_a_cap() -> None:
    stages = huge_report(n_prompts=3, n_stages=300).stages
    comment = render_comment(Report(stages, MODEL, "simct.yml", "now"), marker=MARKER, run_url=None)
    assert len(comment) < COMMENT_LIMIT
    assert_safe(comment, marker=MARKER)
    assert "more stages, listed in the uploaded report" in comment
    assert "[the workflow run]" not in comment  # no run URL, so no link


def test_an_unsafe_run_url_is_not_linked() -> None:
    comment = render_comment(huge_report(n_prompts=300), marker=MARKER, run_url="javascript:alert(1)//)(")
    assert "javascript" not in comment
    assert "the workflow run" in comment


def test_the_last_resort_cuts_at_a_line_end_and_keeps_the_marker() -> None:
    lines = [MARKER] + [f"| row {i} |" for i in range(1000)]
    text = report_module._fit(
        lambda detail, truncated: "\n".join(lines) + "\n",
        report_module.COMMENT_LADDER,
        len,
        500,
        "NOTE: cut",
    )
    assert len(text) <= 500
    assert text.startswith(MARKER + "\n")
    assert text.endswith("\nNOTE: cut")
    assert all(line == MARKER or re.fullmatch(r"\| row \d+ \||NOTE: cut|", line) for line in text.split("\n"))


# --- the sanitizers, for any text ---------------------------------------------------------------------------------

FRAGMENTS = ["```", "~~~", "````", "`", "~", "<!--", "-->", "@octocat", "@org/team", "::error::", "\r\n", "\r", "\n"]
FRAGMENTS += ["    ```", "<img src=x>", "[a](http://e)", "![i](x)", "|", "\\", "#1", "www.e.com", "http://e", "\u202e"]
TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=40).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(text=TEXT, max_chars=st.integers(min_value=0, max_value=400))
def test_fenced_block_cannot_be_closed_from_inside(text: str, max_chars: int) -> None:
    out = fenced(text, max_chars)
    blocks, outside = split_code(out)
    assert outside == []
    assert len(blocks) == 1
    (fence_tokens,) = [t for t in MD.parse(out) if t.type == "fence"]
    assert fence_tokens.content == "\n".join(blocks[0].lines) + "\n"
    assert "<!--" not in out
    assert not re.search(r"^\s*::", out, re.MULTILINE)
    if len(text) > max_chars:
        assert blocks[0].lines[-1] == f"… ({len(text) - max_chars} more characters)"


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=300))
def test_fenced_shows_ordinary_text_unchanged(text: str) -> None:
    text = text.replace("<!--", "").replace("\u2028", "")
    if re.search(r"^\s*::", text, re.MULTILINE) or re.search("[\u202a-\u202e\u2066-\u2069]", text):
        return
    (token,) = MD.parse(fenced(text, 1000))
    assert token.content == text.removesuffix("\n") + "\n"


@settings(max_examples=300, deadline=None)
@given(text=TEXT, max_chars=st.integers(min_value=0, max_value=400))
def test_inline_is_one_inert_line(text: str, max_chars: int) -> None:
    out = inline(text, max_chars)
    assert not set(out) & set("\n\r<>|[]`\\")
    assert "<!--" not in out
    assert not re.search("@(?!" + WORD_JOINER + ")", out)
    assert not re.search(r"(://|www\.)", out, re.IGNORECASE)
    table = MD.render(f"| a | b |\n| --- | --- |\n| {out} | x |\n")
    assert table.count("<td>") == 2, "the text split its table cell"
    assert not re.search(r"<(a|img|script|code|em|strong)\b", table)
    summary = MD.render(f"<details>\n<summary>{out}</summary>\n\n</details>\n")
    assert summary.count("<") == 4, "the text added HTML to a raw HTML line"


@settings(max_examples=300, deadline=None)
@given(text=TEXT)
def test_inline_changes_only_how_text_is_written_not_what_it_says(text: str) -> None:
    decoded = html.unescape(inline(text, 10_000)).replace(WORD_JOINER, "")
    assert decoded == " ".join(normalise(text).split()).replace(WORD_JOINER, "")


def test_inline_truncates_with_a_visible_count() -> None:
    assert inline("abcdefghij", 4) == "abcd … (6 more characters)"
    assert inline("a\n\n  b", 100) == "a b"


@settings(max_examples=200, deadline=None)
@given(text=TEXT)
def test_code_span_is_one_span(text: str) -> None:
    (paragraph,) = [t for t in MD.parse(code_span(text, 200)) if t.type == "inline"]
    kinds = [c.type for c in paragraph.children]
    assert kinds == ["code_inline"]


@given(text=TEXT, max_chars=st.integers(min_value=0, max_value=80))
def test_mermaid_labels_use_only_safe_characters(text: str, max_chars: int) -> None:
    assert re.fullmatch(r"[A-Za-z0-9 _.,:+/=-]*", mermaid_label(text, max_chars))
    assert len(mermaid_label(text, max_chars)) <= max_chars
