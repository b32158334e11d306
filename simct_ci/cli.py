"""Command line: `python -m simct_ci run|merge|collect`. Wires the rooms together and turns verdicts into exit codes.

Exit codes: 0 consistent, 1 inconsistent (the gate), 2 bad config or usage, 3 incomplete.
A shard run (`run --shard i/n`) decides no verdict: 0 when its collection finished, 3 when too many of its
requests failed, 2 for bad input; `merge` over all shards exits with the verdict's code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from simct_ci import __version__
from simct_ci.errors import EXIT_CONSISTENT, EXIT_INCOMPLETE, EXIT_INCONSISTENT, EXIT_USAGE, SimctError
from simct_ci.verdicts import CONSISTENT, INCONSISTENT

if TYPE_CHECKING:
    from simct_ci.collect import ResponseCache
    from simct_ci.config import Config
    from simct_ci.report import Report
    from simct_ci.shard import ShardSpec

DEMO_CONFIG = Path(__file__).resolve().parent / "demo" / "simct.yml"
EXIT_BY_VERDICT = {CONSISTENT: EXIT_CONSISTENT, INCONSISTENT: EXIT_INCONSISTENT}
EXIT_COLLECTED = 0  # a shard run whose collection finished; the verdict is the merge's


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
    run.add_argument(
        "--shard",
        metavar="I/N",
        help="collect only shard I of N of the prompts (a CI matrix job) and leave the verdict to `merge`",
    )
    _publishing_options(run)
    run.set_defaults(handler=_run)

    merge = commands.add_parser(
        "merge", help="combine the output directories of `run --shard i/n` jobs, then test and report as `run` does"
    )
    merge.add_argument("--config", type=Path, required=True, help="the simct.yml the shards ran")
    merge.add_argument("--output-dir", type=Path, default=Path("simct-out"))
    merge.add_argument("shard_dirs", nargs="+", type=Path, metavar="SHARD_DIR", help="every shard's --output-dir")
    _publishing_options(merge)
    merge.set_defaults(handler=_merge)

    collect = commands.add_parser("collect", help="record a live stage's responses, to freeze a baseline")
    collect.add_argument("--config", type=Path, required=True)
    collect.add_argument("--stage", required=True)
    collect.add_argument("--out", type=Path, required=True, help="recorded JSONL file to write")
    collect.set_defaults(handler=_collect)
    return parser


def _publishing_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--github", action="store_true", help="publish to GitHub (set by the Action's entrypoint)")
    command.add_argument("--no-comment", action="store_true", help="with --github: job summary only, no PR comment")
    command.add_argument("--fail-on-comment-error", action="store_true", help="exit 2 when the PR comment fails")


# Imports inside the handlers are deliberate: the first request must not wait for the engine or the report
# (numpy, scipy, rapidfuzz, LightGBM, Jinja2), which a run needs only once the responses are in.


def _run(args: argparse.Namespace) -> int:
    from simct_ci import pipeline
    from simct_ci.collect import ResponseCache
    from simct_ci.config import load_config
    from simct_ci.model import read_card
    from simct_ci.shard import ShardSpec

    spec = ShardSpec.parse(args.shard) if args.shard is not None else None
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
        if spec is not None:
            return _collect_shard(config, config_id(config_path), spec, args.output_dir, cache, card.model_sha256)
        report = pipeline.run(config, config_id(config_path), args.output_dir, cache, card)
    finally:
        cache.close()
    return _report_and_gate(report, args)


def _collect_shard(
    config: Config, config_id: str, spec: ShardSpec, out_dir: Path, cache: ResponseCache, model_sha256: str
) -> int:
    """One matrix job: this shard's prompts' responses and its manifest; the verdict is the merge's."""
    from simct_ci import pipeline, shard

    (out_dir / shard.MANIFEST).unlink(missing_ok=True)  # a run stopped halfway must not look finished
    prompts = shard.select(config.prompts, spec)
    shard_config = dataclasses.replace(config, prompts=prompts)
    responses = pipeline.collect_all(shard_config, out_dir, cache)
    manifest = shard.Manifest.of(config, config_id, spec, prompts, responses, model_sha256)
    path = shard.write_manifest(out_dir, manifest)
    received = sum(len(stage.responses) for stage in responses.values())
    failed = sum(len(stage.failures) for stage in responses.values())
    print(
        f"simct: shard {spec}: {len(prompts)} of {len(config.prompts)} prompts, {received} responses from "
        f"{len(responses)} stages, {failed} requests failed; wrote {path}",
        file=sys.stderr,
    )
    print(
        f"simct: a shard does not decide the verdict: run `python -m simct_ci merge --config {config_id} "
        f"--output-dir DIR SHARD_DIR...` over the output directories of all {spec.count} shards",
        file=sys.stderr,
    )
    if pipeline.too_many_failures(shard_config, responses.values()):
        print(
            f"simct: shard {spec}: more requests failed than gate.max_failed_ratio "
            f"({config.gate.max_failed_ratio:.0%}) allows; rerun it with the same --output-dir to retry only those",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    return EXIT_COLLECTED


class _NoApiKeys(Mapping[str, str]):
    """The environment a merge reads its config with. A merge queries no endpoint, so the stages' API key
    variables need not be set in its job (and no secret is read there): each one reads as this placeholder."""

    PLACEHOLDER = "merge-queries-no-endpoint"

    def __getitem__(self, name: str) -> str:
        return self.PLACEHOLDER

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _merge(args: argparse.Namespace) -> int:
    from simct_ci import pipeline
    from simct_ci.config import load_config
    from simct_ci.merge import merge_shards
    from simct_ci.model import read_card

    config = load_config(args.config, env=_NoApiKeys())
    if args.github:
        from simct_ci.publish import mask_secrets

        mask_secrets((), os.environ)  # only the GitHub token: this config's keys were never read
    card = read_card()
    name = config_id(args.config)
    merged_config, responses = merge_shards(config, name, args.shard_dirs, args.output_dir, card.model_sha256)
    print(f"simct: merged {len(args.shard_dirs)} shards into {args.output_dir}", file=sys.stderr)
    report = pipeline.evaluate(merged_config, name, responses, card)
    return _report_and_gate(report, args)


def _report_and_gate(report: Report, args: argparse.Namespace) -> int:
    """Write and show the report, publish it with --github, and turn the verdict into the exit code."""
    from simct_ci import terminal

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
    from simct_ci.pipeline import stage_sampling

    config = load_config(args.config)
    stage = config.stage(args.stage)
    # A frozen reference holds as many samples as a run asks the reference for.
    recorded = record_stage(stage, config.prompts, stage_sampling(config, stage.name), output=args.out)
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
