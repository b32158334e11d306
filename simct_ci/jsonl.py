"""JSON Lines in and out: one object per line, errors as `DataError("<path>:<line>: <reason>")`.

Lines are split on b"\\n" only: a JSON string may legally hold U+2028 or other characters that
`str.splitlines` would treat as line breaks.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TextIO

from simct_ci.errors import DataError

_UTF8_BOM = b"\xef\xbb\xbf"
# Every character str.splitlines() breaks on, mapped to its escape (as repr writes it).
_ESCAPED_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}
_NEW_FILE_MODE = 0o644  # the Action runs as root in Docker; later steps (artifact upload) run as the runner user


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for every non-blank line of `path`."""
    try:
        handle = path.open("rb")
    except (OSError, ValueError) as error:
        raise DataError(describe_open_error(path, error)) from None
    with handle:
        for number, raw in _numbered_lines(path, handle):
            if number == 1 and raw.startswith(_UTF8_BOM):  # editors on Windows add one
                raw = raw[len(_UTF8_BOM) :]
            if raw.strip():
                yield number, _parse_object(path, number, raw)


def describe_open_error(path: Path, error: OSError | ValueError) -> str:
    """One line saying why `path` cannot be opened for reading."""
    if isinstance(error, FileNotFoundError):
        return f"{one_line(str(path))}: file not found"
    if isinstance(error, IsADirectoryError):
        return f"{one_line(str(path))}: is a directory, expected a file"
    if isinstance(error, OSError) and error.strerror:
        return f"{one_line(str(path))}: cannot read: {error.strerror}"
    return f"{one_line(str(path))}: cannot read: {one_line(str(error))}"


def _numbered_lines(path: Path, handle: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    number = 0
    try:
        for number, raw in enumerate(handle, start=1):
            yield number, raw
    except OSError as error:
        raise DataError(
            f"{one_line(str(path))}:{number + 1}: cannot read: {one_line(error.strerror or str(error))}"
        ) from None


def _parse_object(path: Path, number: int, raw: bytes) -> dict:
    where = f"{one_line(str(path))}:{number}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{where}: invalid UTF-8 at byte {error.start + 1} of the line") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: invalid JSON: {error.msg} (column {error.colno})") from None
    except ValueError as error:  # NaN/Infinity, or an integer too long to convert
        raise DataError(f"{where}: invalid JSON: {one_line(str(error))}") from None
    except RecursionError:
        raise DataError(f"{where}: invalid JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object {{...}}, got {_json_type(value)}")
    return value


def _reject_constant(name: str) -> float:
    # Python accepts NaN and Infinity, standard JSON does not, and no field of ours can hold them.
    raise ValueError(f"{name} is not standard JSON")


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def one_line(text: str) -> str:
    """`text` with line breaks and lone surrogates escaped: a message built from it is one printable line."""
    text = text.translate(_ESCAPED_LINE_BREAKS)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # printing a lone surrogate would crash the very error report
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_line(obj: Mapping[str, object]) -> str:
    """One JSON line (with its newline), UTF-8 as written, that `read_jsonl` reads back as `obj`."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a server's "\ud800" escape) cannot be written as UTF-8; escape it instead.
        text = json.dumps(obj, ensure_ascii=True, allow_nan=False)
    return text + "\n"


def append_line(handle: TextIO, obj: Mapping[str, object]) -> None:
    """Append one JSON line to a UTF-8 text handle and flush, so a crash loses at most the line being written."""
    handle.write(json_line(obj))
    handle.flush()


def write_jsonl_atomic(path: Path, rows: Iterable[Mapping[str, object]]) -> None:
    """Write `rows` as JSONL to `path`: readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            for row in rows:
                handle.write(json_line(row))
            handle.flush()
            os.fsync(handle.fileno())
        Path(temporary).chmod(_NEW_FILE_MODE)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
