"""Make hostile text (model responses, prompts, ids, error messages) safe to show in GitHub Markdown.

Every string that did not come from this code is hostile: shown in a PR comment it must not break out of its
block, mention people or teams, inject HTML, images or links, fake or hide the sticky marker, or run workflow
commands if the Markdown is ever printed to a log. Two shapes are offered:

- `fenced()`: a fenced code block. GitHub renders no HTML, mentions or links inside code, so only the fence
  (longer than any backtick or tilde run in the text) and the marker lookup need care.
- `inline()`: one line for table cells, `<summary>` lines and prose. It is used both in Markdown and inside raw
  HTML blocks, so it escapes with HTML entities (decoded in both places, never read as syntax) rather than
  backslashes (which raw HTML would show literally).
"""

from __future__ import annotations

import re

WORD_JOINER = "\u2060"  # invisible, not whitespace: splits a token for GitHub's parsers, not for a reader
TRUNCATION_NOTE = "… ({n} more characters)"

_LINE_ENDINGS = re.compile(r"\r\n?")
# C0/C1 control characters except tab and newline: never useful to show, and NUL or ESC confuse viewers.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Bidirectional overrides and isolates reorder what a reader sees ("trojan source"): make them visible.
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
_FENCE_RUN = re.compile(r"`+|~+")
_MARKER_OPEN = "<!--"
_WORKFLOW_COMMAND = re.compile(r"^([ \t]*):(?=:)", re.MULTILINE)  # the runner trims leading spaces, then "::"
_MENTION = "@"
_ISSUE_REF = re.compile(r"(#|\bGH-)(?=\d)", re.IGNORECASE)  # "#12", "org/repo#12", "GH-12" link and notify
_AUTOLINK = re.compile(r":(?=//)|www(?=\.)", re.IGNORECASE)  # GFM autolinks bare http(s):// and www. hosts
_INLINE_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "|": "&#124;",  # splits table cells, even inside code spans
        "[": "&#91;",
        "]": "&#93;",
        "!": "&#33;",
        "`": "&#96;",
        "\\": "&#92;",
        "*": "&#42;",
        "_": "&#95;",
        "~": "&#126;",
    }
)
_MERMAID_UNSAFE = re.compile(r"[^A-Za-z0-9 _.,:+/=-]")
_SAFE_URL = re.compile(r"https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+")


def truncate(text: str, max_chars: int) -> tuple[str, int]:
    """The first `max_chars` characters and how many were left out."""
    if len(text) <= max_chars:
        return text, 0
    return text[: max(max_chars, 0)], len(text) - max(max_chars, 0)


def normalise(text: str) -> str:
    """One line ending, no control characters, no lone surrogates (which could not be written as UTF-8)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _LINE_ENDINGS.sub("\n", text)
    text = _CONTROL.sub("", text)
    return _BIDI.sub("\ufffd", text)


def neutralize_marker(text: str) -> str:
    """No HTML comment can open, so a response can neither fake the sticky marker nor hide text after it."""
    return text.replace(_MARKER_OPEN, "<!-" + WORD_JOINER + "-")


def neutralize_workflow_commands(text: str) -> str:
    """`::error::` at a line start would be a workflow command if this text were ever printed to a log."""
    return _WORKFLOW_COMMAND.sub(r"\1:" + WORD_JOINER, text)


def neutralize_mentions(text: str) -> str:
    """`@someone`, `@org/team` and issue references (`#12`, `GH-12`) would notify or cross-link outside code."""
    text = text.replace(_MENTION, _MENTION + WORD_JOINER)
    return _ISSUE_REF.sub(lambda m: m.group(1) + WORD_JOINER, text)


def neutralize_autolinks(text: str) -> str:
    """Bare `http://...` and `www....` become links in GFM; a word joiner keeps them plain text."""
    return _AUTOLINK.sub(lambda m: m.group(0) + WORD_JOINER, text)


def fence_for(text: str) -> str:
    """A backtick fence longer than any backtick or tilde run in `text`, so no line of it can close the block."""
    longest = max((len(run) for run in _FENCE_RUN.findall(text)), default=0)
    return "`" * max(3, longest + 1)


def fenced(text: str, max_chars: int, info: str = "") -> str:
    """`text` as a fenced code block that nothing inside can close, truncated with a visible note."""
    shown, more = truncate(text, max_chars)
    body = neutralize_workflow_commands(neutralize_marker(normalise(shown)))
    if more:
        body = body.rstrip("\n") + "\n" + TRUNCATION_NOTE.format(n=more)
    fence = fence_for(body)
    info = re.sub(r"[^A-Za-z0-9_+-]", "", info)  # an info string with a backtick would void the fence
    return f"{fence}{info}\n{body.removesuffix(chr(10))}\n{fence}"


def inline(text: str, max_chars: int) -> str:
    """`text` as one safe line of Markdown or HTML text: escaped, neutralised, truncated with a visible note."""
    shown, more = truncate(text, max_chars)
    shown = neutralize_workflow_commands(" ".join(normalise(shown).split()))
    shown = neutralize_autolinks(neutralize_mentions(shown))  # before escaping: entities contain "#"
    shown = shown.translate(_INLINE_ESCAPES)
    if more:
        shown = (shown + " " if shown else "") + TRUNCATION_NOTE.format(n=more)
    return shown


def code_span(text: str, max_chars: int) -> str:
    """`text` as one inline code span (outside tables only: GFM splits cells on `|` even inside code)."""
    shown, more = truncate(text, max_chars)
    shown = " ".join(neutralize_marker(normalise(shown)).split())
    if more:
        shown += " " + TRUNCATION_NOTE.format(n=more)
    if not shown.strip():
        return "` `"  # "``" would be two literal backticks, not an empty span
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{ticks}{pad}{shown}{pad}{ticks}"


def mermaid_label(text: str, max_chars: int) -> str:
    """A Mermaid string literal's content: a small allow-list, since Mermaid has no escaping for quotes."""
    return _MERMAID_UNSAFE.sub("_", normalise(text))[:max_chars]


def safe_url(url: str | None) -> str | None:
    """`url` if it is a plain http(s) URL that cannot break out of a Markdown link, else None."""
    if url and _SAFE_URL.fullmatch(url):
        return url
    return None
