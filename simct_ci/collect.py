"""Collect one stage's responses: read a recorded file, or fan requests out to a live endpoint.

Nothing is lost: every response is appended to the stage's responses file and to the cache the moment it
arrives, so a run that is killed halfway leaves a usable file and a rerun queries only what is missing.
An endpoint never aborts the run: a request that fails for good becomes a `Failure`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from simct_ci import jsonl, recorded
from simct_ci.endpoints import ChatEndpoint, Endpoint
from simct_ci.errors import ConfigError, EndpointError
from simct_ci.responses import Failure, Prompt, Response, StageResponses

if TYPE_CHECKING:
    from simct_ci.config import Sampling, StageConfig

EndpointFactory = Callable[["StageConfig", "Sampling"], Endpoint]
CACHE_FORMAT = 1  # part of every key: bump it and old entries simply stop matching


# -- cache --------------------------------------------------------------------------------------------------


def cache_key(stage: StageConfig, sampling: Sampling, prompt: Prompt, sample: int) -> str:
    """Everything that shapes a response, hashed. The API key is left out: it authorises, it does not shape."""
    identity = {
        "format": CACHE_FORMAT,
        "base_url": (stage.base_url or "").rstrip("/"),  # ".../v1/" and ".../v1" are one endpoint
        "model": stage.model,
        "api": stage.api,
        "system_prompt": stage.system_prompt,
        "prompt": prompt.text,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "max_tokens": sampling.max_tokens,
        "seed": sampling.seed,
        "sample": sample,
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache:
    """Responses already received, as JSONL `{"key", "response"}` appended as they arrive; thread-safe.

    `path=None` (or `ResponseCache.disabled()`) remembers nothing, for runs that must query every time.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, str] = {}
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        if path is not None and path.exists():
            self._load(path)

    @classmethod
    def disabled(cls) -> ResponseCache:
        return cls(None)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, response: str) -> None:
        if self.path is None:
            return
        with self._lock:
            if self._entries.get(key) == response:
                return
            self._entries[key] = response
            jsonl.append_line(self._open(self.path), {"key": key, "response": response})

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def _load(self, path: Path) -> None:
        # A cache only saves requests: a line cut short by a crash, or garbage, is skipped, never fatal.
        with path.open("rb") as handle:
            for raw in handle:  # binary lines split on b"\n" only, as jsonl writes them
                try:
                    entry = json.loads(raw.decode("utf-8"))
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    key, response = entry.get("key"), entry.get("response")
                    if isinstance(key, str) and isinstance(response, str):
                        self._entries[key] = response

    def _open(self, path: Path) -> IO[str]:
        if self._handle is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("a", encoding="utf-8")
            if self._handle.tell() > 0 and not _ends_with_newline(path):
                self._handle.write("\n")  # a crash cut the last line: do not glue the next entry onto it
        return self._handle


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


# -- progress -----------------------------------------------------------------------------------------------


class ProgressSink(Protocol):
    """Told about each finished request of one stage."""

    def start(self, stage: str, total: int, done: int = 0) -> None: ...

    def advance(self, *, failed: bool) -> None: ...

    def finish(self) -> None: ...


class LogProgress:
    """Plain lines for CI logs: at the start, at every 10 %, and at the end."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._stage, self._total, self._done, self._failed, self._next = "", 0, 0, 0, 0

    def start(self, stage: str, total: int, done: int = 0) -> None:
        self._stage, self._total, self._done, self._failed = stage, total, done, 0
        cached = f", {done} from cache" if done else ""
        self._line(f"collect {stage}: {total} requests{cached}")
        self._next = self._threshold_after(done)

    def advance(self, *, failed: bool) -> None:
        self._done += 1
        self._failed += failed
        if self._done >= self._next and self._done < self._total:
            self._line(self._summary())
            self._next = self._threshold_after(self._done)

    def finish(self) -> None:
        self._line(self._summary())

    def _threshold_after(self, done: int) -> int:
        step = max(1, -(-self._total // 10))  # ceil(total / 10): about ten lines whatever the size
        return (done // step + 1) * step

    def _summary(self) -> str:
        return f"collect {self._stage}: {self._done}/{self._total} responses, {self._failed} failed"

    def _line(self, text: str) -> None:
        stream = self._stream if self._stream is not None else sys.stderr
        print(text, file=stream, flush=True)


class RichProgress:
    """A live bar for people at a terminal."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        from rich.console import Console

        self._console = Console(file=stream if stream is not None else sys.stderr)
        self._progress: Any = None
        self._task: Any = None
        self._stage, self._total, self._done, self._failed = "", 0, 0, 0

    def start(self, stage: str, total: int, done: int = 0) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._stage, self._total, self._done, self._failed = stage, total, done, 0
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self._console,
        )
        self._progress.start()
        self._task = self._progress.add_task(self._description(), total=total, completed=done)

    def advance(self, *, failed: bool) -> None:
        self._done += 1
        self._failed += failed
        self._progress.update(self._task, advance=1, description=self._description())

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._console.print(f"collect {self._stage}: {self._done}/{self._total} responses, {self._failed} failed")

    def _description(self) -> str:
        failed = f" [red]{self._failed} failed[/]" if self._failed else ""
        return f"collect {self._stage}{failed}"


def auto_progress(stream: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> ProgressSink:
    """A bar on an interactive terminal; log lines in CI or when stderr is redirected."""
    stream = stream if stream is not None else sys.stderr
    environ = environ if environ is not None else os.environ
    interactive = hasattr(stream, "isatty") and stream.isatty() and not environ.get("CI")
    return RichProgress(stream) if interactive else LogProgress(stream)


# -- collection ---------------------------------------------------------------------------------------------


def collect_stage(
    stage: StageConfig,
    prompts: Sequence[Prompt],
    sampling: Sampling,
    *,
    responses_path: Path,
    cache: ResponseCache,
    progress: ProgressSink | None = None,
    endpoint_factory: EndpointFactory = ChatEndpoint,
) -> StageResponses:
    """All responses of one stage for `prompts` x `range(sampling.samples)`, also written to `responses_path`.

    Recorded stages keep only the configured prompts and samples (what is absent stays absent: the engine
    counts it as missing). Live stages are queried with `stage.concurrency` requests in flight.
    """
    if stage.is_recorded:
        return _recorded_stage(stage, prompts, sampling, responses_path)
    return _live_stage(stage, prompts, sampling, responses_path, cache, progress or auto_progress(), endpoint_factory)


def record_stage(
    stage: StageConfig,
    prompts: Sequence[Prompt],
    sampling: Sampling,
    *,
    output: Path,
    cache: ResponseCache | None = None,
    progress: ProgressSink | None = None,
    endpoint_factory: EndpointFactory = ChatEndpoint,
) -> StageResponses:
    """Freeze a live stage into a recorded JSONL file (`python -m simct_ci collect`); failures are returned."""
    if stage.is_recorded:
        raise ConfigError(f"stages.{stage.name}: is a recorded stage; collect needs a live stage with base_url")
    return collect_stage(
        stage,
        prompts,
        sampling,
        responses_path=output,
        cache=cache if cache is not None else ResponseCache.disabled(),
        progress=progress,
        endpoint_factory=endpoint_factory,
    )


def _recorded_stage(
    stage: StageConfig, prompts: Sequence[Prompt], sampling: Sampling, responses_path: Path
) -> StageResponses:
    assert stage.responses is not None
    wanted = {prompt.id for prompt in prompts}
    kept: dict[tuple[str, int], Response] = {}
    for response in recorded.read_recorded(stage.responses):
        slot = (response.prompt_id, response.sample)
        if response.prompt_id in wanted and 0 <= response.sample < sampling.samples and slot not in kept:
            kept[slot] = response
    responses = _sorted(kept.values())
    # Copied beside the live stages' files, so the output directory holds every response the report used;
    # never over the source itself, which would drop the prompts and samples this config does not use.
    if responses_path.resolve() != stage.responses.resolve():
        recorded.write_recorded(responses_path, responses)
    return StageResponses(stage.name, responses)


def _live_stage(
    stage: StageConfig,
    prompts: Sequence[Prompt],
    sampling: Sampling,
    responses_path: Path,
    cache: ResponseCache,
    progress: ProgressSink,
    endpoint_factory: EndpointFactory,
) -> StageResponses:
    received: list[Response] = []
    failures: list[Failure] = []
    todo: list[tuple[Prompt, int, str]] = []
    responses_path.parent.mkdir(parents=True, exist_ok=True)
    with responses_path.open("w", encoding="utf-8") as out:
        for prompt in prompts:
            for sample in range(sampling.samples):
                key = cache_key(stage, sampling, prompt, sample)
                text = cache.get(key)
                if text is None:
                    todo.append((prompt, sample, key))
                else:
                    received.append(Response(prompt.id, prompt.text, text, sample))
                    jsonl.append_line(out, recorded.response_row(received[-1]))
        total = len(received) + len(todo)
        progress.start(stage.name, total, done=len(received))
        try:
            if todo:
                endpoint = endpoint_factory(stage, sampling)
                try:
                    _fan_out(endpoint, todo, stage.concurrency, out, cache, progress, received, failures)
                finally:
                    endpoint.close()
        finally:
            progress.finish()
    # The append order is arrival order; the final file is sorted so reruns and diffs are stable.
    responses = _sorted(received)
    recorded.write_recorded(responses_path, responses)
    failures.sort(key=lambda f: (f.prompt_id, f.sample))
    return StageResponses(stage.name, responses, tuple(failures))


def _fan_out(
    endpoint: Endpoint,
    todo: list[tuple[Prompt, int, str]],
    concurrency: int,
    out: IO[str],
    cache: ResponseCache,
    progress: ProgressSink,
    received: list[Response],
    failures: list[Failure],
) -> None:
    """Run the requests on a pool; results are written here, on the calling thread, so files need no lock."""
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="simct-collect")
    futures: dict[Future[str], tuple[Prompt, int, str]] = {}
    try:
        for prompt, sample, key in todo:
            futures[pool.submit(endpoint.complete, prompt, sample)] = (prompt, sample, key)
        for future in as_completed(futures):
            prompt, sample, key = futures[future]
            try:
                text = future.result()
            except EndpointError as error:
                failures.append(Failure(prompt.id, sample, str(error)))
                progress.advance(failed=True)
                continue
            response = Response(prompt.id, prompt.text, text, sample)
            jsonl.append_line(out, recorded.response_row(response))
            cache.put(key, text)
            received.append(response)
            progress.advance(failed=False)
    except BaseException:
        # Cancelled (Ctrl-C, a bug): do not start the queued requests; what arrived is already on disk.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _sorted(responses: Iterable[Response]) -> tuple[Response, ...]:
    """In the order write_recorded writes them, so the returned tuple and the file agree."""
    return tuple(sorted(responses, key=lambda r: (r.prompt_id, r.sample)))
