"""Render the demo's PR comment to a PNG, the way GitHub shows it, for the README.

Needs Debian's chromium and, from the npm registry, mermaid and github-markdown-css installed under
NODE_MODULES (default /tmp/render/node_modules):
    apt-get install chromium && (cd /tmp/render && npm install mermaid@11 github-markdown-css@5)
Run: python docs/pictures/render_comment.py   (writes docs/pictures/comment.png)
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from simct_ci.cli import DEMO_CONFIG, config_id  # noqa: E402
from simct_ci.collect import ResponseCache  # noqa: E402
from simct_ci.config import load_config  # noqa: E402
from simct_ci.github import marker_for  # noqa: E402
from simct_ci.model import read_card  # noqa: E402
from simct_ci.pipeline import run  # noqa: E402
from simct_ci.report import render_comment  # noqa: E402

NODE_MODULES = Path(os.environ.get("NODE_MODULES", "/tmp/render/node_modules"))
OUT = ROOT / "docs" / "pictures" / "comment.png"
MERMAID_BLOCK = re.compile(r'<pre><code class="language-mermaid">(.*?)</code></pre>', re.DOTALL)

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="{css}">
<style>body {{ background: #fff; }} .markdown-body {{ max-width: 880px; margin: 16px auto; padding: 16px 24px;
border: 1px solid #d0d7de; border-radius: 6px; }}</style>
<script src="{mermaid}"></script></head>
<body><article class="markdown-body">{body}</article>
<script>mermaid.initialize({{startOnLoad: true, theme: "default"}});</script></body></html>"""


def comment_markdown(out_dir: Path) -> str:
    config = load_config(DEMO_CONFIG)
    report = run(config, config_id(DEMO_CONFIG), out_dir, ResponseCache(None), read_card())
    return render_comment(report, marker=marker_for(report.config_id), run_url=None)


def to_html(markdown: str) -> str:
    renderer = MarkdownIt("commonmark", {"html": True}).enable("table")
    body = renderer.render(markdown)
    # GitHub turns ```mermaid blocks into charts; mermaid.js does the same with <pre class="mermaid">.
    return MERMAID_BLOCK.sub(r'<pre class="mermaid">\1</pre>', body)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        markdown = comment_markdown(Path(scratch) / "out")
        page = Path(scratch) / "comment.html"
        body = to_html(markdown)
        page.write_text(
            PAGE.format(
                css=NODE_MODULES / "github-markdown-css" / "github-markdown-light.css",
                mermaid=NODE_MODULES / "mermaid" / "dist" / "mermaid.min.js",
                body=body,
            ),
            encoding="utf-8",
        )
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={scratch}/profile",
                "--hide-scrollbars",
                "--window-size=960,1500",
                "--virtual-time-budget=5000",
                f"--screenshot={OUT}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {OUT} ({html.escape(str(OUT.stat().st_size))} bytes)")


if __name__ == "__main__":
    main()
