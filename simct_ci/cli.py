"""Command line: `python -m simct_ci run|collect`. Wires the rooms together and turns verdicts into exit codes.

Exit codes: 0 consistent, 1 inconsistent (the gate), 2 bad config or usage, 3 incomplete.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from simct_ci import __version__
from simct_ci.errors import EXIT_CONSISTENT, EXIT_INCOMPLETE, EXIT_INCONSISTENT, EXIT_USAGE, SimctError
from simct_ci.verdicts import CONSISTENT, INCONSISTENT

DEMO_CONFIG = Path(__file__).resolve().parent / "demo" / "simct.yml"
EXIT_BY_VERDICT = {CONSISTENT: EXIT_CONSISTENT, INCONSISTENT: EXIT_INCONSISTENT}


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 with one line, like every other error of ours."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"simct: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m simct_ci", description="SimCT consistency test between LLM stages.")
    parser.add_argument("--version", action="version", version=f"simct-action {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="test every stage against the reference and write the report")
    run.add_argument("--config", type=Path, help="simct.yml (default: the embedded demo)")
    run.add_argument("--output-dir", type=Path, default=Path("simct-out"))
    run.add_argument("--cache", type=Path, help="response cache file (default: OUTPUT_DIR/cache.jsonl)")
    run.add_argument("--no-cache", action="store_true", help="query every response again")
    run.add_argument("--github", action="store_true", help="publish to GitHub (set by the Action's entrypoint)")
    run.add_argument("--no-comment", action="store_true", help="with --github: job summary only, no PR comment")
    run.add_argument("--fail-on-comment-error", action="store_true", help="exit 2 when the PR comment fails")
    run.set_defaults(handler=_run)

    collect = commands.add_parser("collect", help="record a live stage's responses, to freeze a baseline")
    collect.add_argument("--config", type=Path, required=True)
    collect.add_argument("--stage", required=True)
    collect.add_argument("--out", type=Path, required=True, help="recorded JSONL file to write")
    collect.set_defaults(handler=_collect)
    return parser


def _run(args: argparse.Namespace) -> int:
    from simct_ci import pipeline, terminal
    from simct_ci.collect import ResponseCache
    from simct_ci.config import load_config
    from simct_ci.model import read_card

    config_path = args.config or DEMO_CONFIG
    if args.config is None:
        print(f"simct: no --config given: running the embedded demo ({DEMO_CONFIG})", file=sys.stderr)
    config = load_config(config_path)
    if args.github:
        from simct_ci.publish import mask_secrets

        mask_secrets(config.secrets(), os.environ)
    card = read_card()  # a broken model fails now, before minutes of requests
    cache = ResponseCache(None if args.no_cache else (args.cache or args.output_dir / "cache.jsonl"))
    try:
        report = pipeline.run(config, config_id(config_path), args.output_dir, cache, card)
    finally:
        cache.close()
    paths = terminal.write_and_show(report, args.output_dir)
    exit_code = EXIT_BY_VERDICT.get(report.verdict, EXIT_INCOMPLETE)
    if args.github:
        from simct_ci.publish import publish

        published = publish(report, paths, os.environ, comment=not args.no_comment)
        if not published and args.fail_on_comment_error:
            return EXIT_USAGE
    return exit_code


def config_id(path: Path) -> str:
    """Names this config's sticky comment: its path in the workspace, so two configs keep two comments."""
    workspace = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd()).resolve()
    resolved = path.resolve()
    return resolved.relative_to(workspace).as_posix() if resolved.is_relative_to(workspace) else resolved.name


def _collect(args: argparse.Namespace) -> int:
    from simct_ci.collect import record_stage
    from simct_ci.config import load_config

    config = load_config(args.config)
    stage = config.stage(args.stage)
    recorded = record_stage(stage, config.prompts, config.sampling, output=args.out)
    print(f"simct: wrote {len(recorded.responses)} responses of {stage.name} to {args.out}", file=sys.stderr)
    if recorded.failures:
        print(f"simct: {len(recorded.failures)} requests failed; rerun to fill them in", file=sys.stderr)
        return EXIT_INCOMPLETE
    return EXIT_CONSISTENT


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SimctError as error:
        print(f"simct: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("simct: interrupted; rerun with the same --output-dir to resume from the cache", file=sys.stderr)
        return 130
