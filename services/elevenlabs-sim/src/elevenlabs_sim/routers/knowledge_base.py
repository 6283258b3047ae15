"""Knowledge base documents: ``/v1/convai/knowledge-base``.

Approximations: URLs are stored, never fetched (``extracted_inner_html`` is empty for them); a
text document's ``extracted_inner_html`` is its text; an uploaded file's is its UTF-8 decoded
content. ``parent_folder_id`` is stored and echoed in ``folder_path`` but folders themselves are
not simulated. ``search`` is a case-insensitive substring match on the name. Deleting a document
that agents use needs ``force=true`` (409 ``document_has_dependent_agents`` otherwise).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile

from elevenlabs_sim import relations
from elevenlabs_sim.deps import FormBody, JsonBody, State
from elevenlabs_sim.errors import api_error, not_found
from elevenlabs_sim.pagination import paginate
from elevenlabs_sim.shapes import access_info, dependent_agent
from elevenlabs_sim.state import Record, SimState, now_unix

router = APIRouter(prefix="/v1/convai/knowledge-base", tags=["knowledge-base"])


def _folder_path(record: Record, *, with_names: bool) -> list[dict[str, Any]]:
    parent = record.data.get("parent_folder_id")
    if not parent:
        return []
    return [{"id": parent, "name": None}] if with_names else [{"id": parent}]


def _base(record: Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.data["name"],
        "type": record.data["type"],
        "metadata": {
            "created_at_unix_secs": record.created_at,
            "last_updated_at_unix_secs": record.updated_at,
            "size_bytes": record.data["size_bytes"],
        },
        "supported_usages": ["prompt", "auto"],
        "access_info": access_info(),
        "folder_parent_id": record.data.get("parent_folder_id"),
    }


def summary(state: SimState, record: Record) -> dict[str, Any]:
    doc = _base(record)
    doc["folder_path"] = _folder_path(record, with_names=False)
    doc["dependent_agents"] = [dependent_agent(a) for a in relations.agents_using_doc(state, record.id)]
    if record.data["type"] == "url":
        doc["url"] = record.data["url"]
    return doc


def detailed(record: Record) -> dict[str, Any]:
    doc = _base(record)
    doc["folder_path"] = _folder_path(record, with_names=True)
    doc["extracted_inner_html"] = record.data.get("content", "")
    doc["content_format"] = "html"
    if record.data["type"] == "url":
        doc["url"] = record.data["url"]
        doc["auto_sync_info"] = None
    if record.data["type"] == "file":
        doc["filename"] = record.data["filename"]
    return doc


def _created(record: Record) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.data["name"],
        "folder_path": _folder_path(record, with_names=False),
    }


def _get(state: SimState, doc_id: str) -> Record:
    record = state.knowledge_base.get(doc_id)
    if record is None:
        raise not_found("document", "Document not found")
    return record


@router.post("/text")
async def create_from_text(body: JsonBody, state: State) -> dict[str, Any]:
    text: str = body["text"]
    data = {
        "type": "text",
        "name": body.get("name") or text[:50].strip() or "Untitled",
        "content": text,
        "size_bytes": len(text.encode()),
        "parent_folder_id": body.get("parent_folder_id"),
    }
    return _created(state.add(state.knowledge_base, state.new_kb_id(), data))


@router.post("/url")
async def create_from_url(body: JsonBody, state: State) -> dict[str, Any]:
    url: str = body["url"]
    data = {
        "type": "url",
        "name": body.get("name") or url,
        "url": url,
        "content": "",
        "size_bytes": 0,
        "parent_folder_id": body.get("parent_folder_id"),
        "enable_auto_sync": body.get("enable_auto_sync", False),
        "auto_remove": body.get("auto_remove", False),
    }
    return _created(state.add(state.knowledge_base, state.new_kb_id(), data))


@router.post("/file")
async def create_from_file(form: FormBody, state: State) -> dict[str, Any]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ["body", "file"],
                    "msg": "Expected UploadFile, received: <class 'str'>",
                }
            ]
        )
    content = await upload.read()
    filename = upload.filename or "file"
    name = form.get("name")
    parent = form.get("parent_folder_id")
    data = {
        "type": "file",
        "name": name if isinstance(name, str) and name else filename,
        "filename": filename,
        "content": content.decode("utf-8", errors="replace"),
        "size_bytes": len(content),
        "parent_folder_id": parent if isinstance(parent, str) and parent else None,
    }
    return _created(state.add(state.knowledge_base, state.new_kb_id(), data))


@router.get("")
async def list_documents(
    state: State,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
    cursor: str | None = None,
    search: str | None = None,
    types: Annotated[list[str] | None, Query()] = None,
    parent_folder_id: str | None = None,
    sort_by: Literal["name", "created_at", "updated_at", "size"] | None = None,
    sort_direction: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    records = state.knowledge_base.values()
    if search:
        records = [r for r in records if search.lower() in str(r.data["name"]).lower()]
    if types:
        records = [r for r in records if r.data["type"] in types]
    if parent_folder_id:
        records = [r for r in records if r.data.get("parent_folder_id") == parent_folder_id]
    keys = {
        "name": lambda r: str(r.data["name"]),
        "updated_at": lambda r: r.updated_at,
        "size": lambda r: int(r.data["size_bytes"]),
    }
    page = paginate(
        records,
        page_size=page_size,
        cursor=cursor,
        key=keys.get(sort_by or ""),
        descending=sort_direction == "desc",
    )
    return {
        "documents": [summary(state, r) for r in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    }


@router.get("/{documentation_id}")
async def get_document(documentation_id: str, state: State) -> dict[str, Any]:
    return detailed(_get(state, documentation_id))


@router.patch("/{documentation_id}")
async def update_document(documentation_id: str, body: JsonBody, state: State) -> dict[str, Any]:
    record = _get(state, documentation_id)
    if body.get("name"):
        record.data["name"] = body["name"]
    if body.get("content") is not None:
        if record.data["type"] == "url" and record.data.get("enable_auto_sync"):
            raise api_error(400, "invalid_update", "Content of auto-synced URL documents cannot be changed")
        record.data["content"] = body["content"]
        record.data["size_bytes"] = len(str(body["content"]).encode())
    record.updated_at = now_unix()
    return detailed(record)


@router.delete("/{documentation_id}")
async def delete_document(documentation_id: str, state: State, force: bool = False) -> dict[str, Any]:
    _get(state, documentation_id)
    if relations.agents_using_doc(state, documentation_id):
        if not force:
            raise api_error(
                409,
                "document_has_dependent_agents",
                "Document is used by agents; remove it from them first or delete with force=true",
            )
        relations.detach_doc(state, documentation_id)
    state.knowledge_base.delete(documentation_id)
    return {}
