"""The recorded-responses format: JSONL, one response per line.

    {"prompt_id": str, "prompt": str, "response": str, "sample": int >= 0}

Extra keys are allowed and ignored, so other tools can annotate the files. A (prompt_id, sample) pair
appears once; all lines of one prompt_id carry the same prompt text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from simct_ci.errors import DataError
from simct_ci.jsonl import one_line, read_jsonl, write_jsonl_atomic
from simct_ci.responses import Response

_REPR_LIMIT = 60


def read_recorded(path: Path) -> tuple[Response, ...]:
    """Every response of a recorded file, in file order, each line validated."""
    responses: list[Response] = []
    first_line_of: dict[tuple[str, int], int] = {}
    prompt_of: dict[str, tuple[str, int]] = {}  # prompt_id -> (prompt text, line it was first seen)
    for number, row in read_jsonl(path):
        where = f"{one_line(str(path))}:{number}"
        response = _response_from_row(where, row)
        key = (response.prompt_id, response.sample)
        if key in first_line_of:
            raise DataError(
                f"{where}: duplicate response for prompt_id {_show(response.prompt_id)} sample {response.sample}"
                f" (first at line {first_line_of[key]})"
            )
        first_line_of[key] = number
        known_prompt, known_line = prompt_of.setdefault(response.prompt_id, (response.prompt, number))
        if known_prompt != response.prompt:
            raise DataError(
                f'{where}: "prompt" differs from line {known_line} for the same prompt_id {_show(response.prompt_id)}'
            )
        responses.append(response)
    return tuple(responses)


def write_recorded(path: Path, responses: Iterable[Response]) -> None:
    """Write `responses` atomically, sorted by (prompt_id, sample) so files diff well between runs."""
    ordered = sorted(responses, key=lambda response: (response.prompt_id, response.sample))
    write_jsonl_atomic(path, (response_row(response) for response in ordered))


def response_row(response: Response) -> dict[str, object]:
    """One line of the recorded format, exactly its four keys."""
    return {
        "prompt_id": response.prompt_id,
        "prompt": response.prompt,
        "response": response.response,
        "sample": response.sample,
    }


def _response_from_row(where: str, row: dict) -> Response:
    prompt_id = _string(where, row, "prompt_id")
    if not prompt_id:
        raise DataError(f'{where}: "prompt_id" must be a non-empty string')
    sample = row.get("sample")
    if "sample" not in row:
        raise DataError(f'{where}: "sample" is missing')
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise DataError(f'{where}: "sample" must be an integer >= 0, got {_show(sample)}')
    return Response(
        prompt_id=prompt_id,
        prompt=_string(where, row, "prompt"),
        response=_string(where, row, "response"),
        sample=sample,
    )


def _string(where: str, row: dict, key: str) -> str:
    if key not in row:
        raise DataError(f'{where}: "{key}" is missing')
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f'{where}: "{key}" must be a string, got {_show(value)}')
    return value


def _show(value: object) -> str:
    """A short one-line JSON rendering of a value read from a file (which may be huge or hold anything)."""
    text = one_line(json.dumps(value, ensure_ascii=False))
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."
