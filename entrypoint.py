"""The Action's entrypoint: turn the runner's INPUT_* environment into CLI arguments, run the same code."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from simct_ci.cli import main
from simct_ci.errors import EXIT_USAGE

_BOOLEANS = {"true": True, "false": False}


class InputError(ValueError):
    pass


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(f"INPUT_{name.upper()}", "").strip().lower()
    if not raw:
        return default
    if raw not in _BOOLEANS:
        raise InputError(f"input {name}: must be true or false, got {raw[:40]!r}")
    return _BOOLEANS[raw]


def arguments(env: Mapping[str, str]) -> list[str]:
    """`run --github ...` from the action's inputs (see action.yml)."""
    args = ["run", "--github"]
    args += ["--config", env.get("INPUT_CONFIG", "").strip() or "simct.yml"]
    args += ["--output-dir", env.get("INPUT_OUTPUT_DIR", "").strip() or "simct-out"]
    if cache := env.get("INPUT_CACHE", "").strip():
        args += ["--cache", cache]
    if not _flag(env, "comment", default=True):
        args.append("--no-comment")
    if _flag(env, "fail_on_comment_error", default=False):
        args.append("--fail-on-comment-error")
    return args


if __name__ == "__main__":
    try:
        argv = arguments(os.environ)
    except InputError as error:
        print(f"simct: error: {error}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    sys.exit(main(argv))
