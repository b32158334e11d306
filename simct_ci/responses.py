"""The data that crosses rooms: prompts in, responses out. Plain frozen dataclasses, no behaviour beyond views."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

OPEN, CLOSED = "open", "closed"
QUERY_TYPES = (OPEN, CLOSED)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    type: str = OPEN  # "open" | "closed": closed questions have one right answer, so responses vary less


@dataclass(frozen=True)
class Response:
    """One response, exactly the recorded JSONL line: {"prompt_id", "prompt", "response", "sample"}."""

    prompt_id: str
    prompt: str
    response: str
    sample: int


@dataclass(frozen=True)
class Failure:
    """A request that failed for good after its retries; listed in the report, never counted as consistent."""

    prompt_id: str
    sample: int
    error: str


@dataclass(frozen=True)
class StageResponses:
    stage: str
    responses: tuple[Response, ...]
    failures: tuple[Failure, ...] = field(default=())

    def texts_by_prompt(self) -> dict[str, list[str]]:
        """Responses of each prompt ordered by sample index."""
        grouped: dict[str, list[Response]] = defaultdict(list)
        for response in self.responses:
            grouped[response.prompt_id].append(response)
        return {pid: [r.response for r in sorted(rs, key=lambda r: r.sample)] for pid, rs in grouped.items()}
