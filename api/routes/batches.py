"""The answer of every batch route: each submission's outcome at its index, 202 when all were accepted, else 207."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from fastapi import Response, status
from pydantic import BaseModel

from api.problems import problem_of
from api.schemas import BatchAccepted, SubmissionResult

T = TypeVar("T", bound=BaseModel)


def multi_status(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry of a batch route's 207 answer (``model``: its body)."""
    return {207: {"model": model, "description": "some submissions were refused: each one's answer at its index"}}


async def answer_batch(submissions: Sequence[Awaitable[T]], path: str, response: Response) -> BatchAccepted[T]:
    """Await the submissions' relays, all at once (each may wait for its directory to be chosen, so they reach the
    batchers in no set order; of two identical submissions one is accepted and the other refused 409 ``in-flight``),
    and answer every one: 202 when all were accepted, else 207 Multi-Status with each refusal's problem — what the
    single route would have answered (400, 403, 404, 409, 422, or 503: a ``submission-pending`` one stays queued
    and carries its ``status_url``) — at its index, its ``instance`` ``{path}#{index}``. Each submission stands
    alone: one refused changes nothing for the others. Re-raises an error no problem maps (a defect)."""
    outcomes = await asyncio.gather(*submissions, return_exceptions=True)
    results: list[SubmissionResult[T]] = []
    for index, outcome in enumerate(outcomes):
        if not isinstance(outcome, BaseException):
            results.append(SubmissionResult[T](index=index, status=status.HTTP_202_ACCEPTED, accepted=outcome))
            continue
        problem = problem_of(outcome, f"{path}#{index}")
        if problem is None:
            raise outcome
        results.append(SubmissionResult[T](index=index, status=problem.status, problem=problem.body(f"{path}#{index}")))
    refused = sum(1 for r in results if r.accepted is None)
    response.status_code = status.HTTP_207_MULTI_STATUS if refused else status.HTTP_202_ACCEPTED
    return BatchAccepted[T](accepted=len(results) - refused, refused=refused, results=results)
