"""Test-control API under ``/_sim`` (no auth). Other packages' tests rely on it: keep it stable."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from elevenlabs_sim.deps import State
from elevenlabs_sim.state import Fault

router = APIRouter(prefix="/_sim", tags=["simulator control"])


class FaultSpec(BaseModel):
    method: str | None = None
    path_regex: str = ".*"
    status: int | None = Field(default=None, ge=100, le=599)
    count: int = Field(default=1, ge=1)
    retry_after: float | None = Field(default=None, ge=0)
    delay_ms: int | None = Field(default=None, ge=0)
    body: Any = None
    after: bool = Field(
        default=False,
        description="Perform the request first, then delay and/or answer `status` instead of its answer.",
    )

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


@router.get("/requests")
async def get_requests(state: State, path: str | None = None, method: str | None = None) -> dict[str, Any]:
    entries = state.request_log
    if path:
        entries = [e for e in entries if path in e["path"]]
    if method:
        entries = [e for e in entries if e["method"] == method.upper()]
    return {"requests": entries}


@router.delete("/requests")
async def clear_requests(state: State) -> dict[str, int]:
    cleared = len(state.request_log)
    state.request_log.clear()
    return {"cleared": cleared}


@router.post("/faults")
async def add_fault(spec: FaultSpec, state: State) -> dict[str, Any]:
    fault = Fault(
        method=spec.method.upper() if spec.method else None,
        path_regex=re.compile(spec.path_regex),
        status=spec.status,
        remaining=spec.count,
        retry_after=spec.retry_after,
        delay_ms=spec.delay_ms,
        body=spec.body,
        after=spec.after,
    )
    state.faults.append(fault)
    return {"queued": fault.describe()}


@router.get("/faults")
async def list_faults(state: State) -> dict[str, Any]:
    return {"faults": [f.describe() for f in state.faults if f.remaining > 0]}


@router.delete("/faults")
async def clear_faults(state: State) -> dict[str, int]:
    cleared = len(state.faults)
    state.faults.clear()
    return {"cleared": cleared}


@router.post("/reset")
async def reset(state: State) -> dict[str, bool]:
    state.reset()
    return {"ok": True}


@router.get("/state")
async def counts(state: State) -> dict[str, int]:
    return state.counts()
