"""Knowledge base (api-v1.md section 4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import File, Form, UploadFile
from fastapi.responses import JSONResponse

from gateway import views
from gateway.knowledge_base import KnowledgeBase
from gateway.models import KnowledgeDocument
from gateway.responses import WRITE_RESPONSES, DocumentCreatedOut, DocumentList, DocumentOut, Done
from gateway.routes.deps import PageSize, Service, api_router, respond
from gateway.schemas import MAX_DOCUMENT_NAME_CHARS, TextDocumentRequest, UrlDocumentRequest

router = api_router()


@router.post(
    "/knowledge-base/text",
    tags=["knowledge-base"],
    response_model=DocumentCreatedOut,
    responses=WRITE_RESPONSES,
)
async def create_text_document(body: TextDocumentRequest, service: Service) -> JSONResponse:
    return respond(await KnowledgeBase(service).create_text(body))


@router.post(
    "/knowledge-base/url",
    tags=["knowledge-base"],
    response_model=DocumentCreatedOut,
    responses=WRITE_RESPONSES,
)
async def create_url_document(body: UrlDocumentRequest, service: Service) -> JSONResponse:
    return respond(await KnowledgeBase(service).create_url(body))


@router.post(
    "/knowledge-base/file",
    tags=["knowledge-base"],
    response_model=DocumentCreatedOut,
    responses=WRITE_RESPONSES,
)
async def create_file_document(
    service: Service,
    file: Annotated[UploadFile, File()],
    name: Annotated[str | None, Form(max_length=MAX_DOCUMENT_NAME_CHARS)] = None,
    parent_folder_id: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    return respond(await KnowledgeBase(service).create_file(file, name, parent_folder_id))


@router.post(
    "/knowledge-base/ingest",
    tags=["knowledge-base"],
    response_model=DocumentCreatedOut,
    responses=WRITE_RESPONSES,
)
async def ingest_document(
    service: Service,
    source_type: Annotated[str, Form()],
    text: Annotated[str | None, Form()] = None,
    url: Annotated[str | None, Form()] = None,
    file: Annotated[UploadFile | None, File()] = None,
    name: Annotated[str | None, Form(max_length=MAX_DOCUMENT_NAME_CHARS)] = None,
    parent_folder_id: Annotated[str | None, Form()] = None,
) -> JSONResponse:
    use_case = KnowledgeBase(service)
    return respond(await use_case.ingest(source_type, text, url, file, name, parent_folder_id))


@router.get("/knowledge-base", tags=["knowledge-base"], response_model=DocumentList)
async def list_documents(
    service: Service, page_size: PageSize = 30, cursor: str | None = None
) -> dict[str, Any]:
    rows, next_cursor = await service.page(KnowledgeDocument, cursor, page_size)
    return {"documents": [views.document_view(d) for d in rows], "cursor": next_cursor}


@router.get("/knowledge-base/{document_id}", tags=["knowledge-base"], response_model=DocumentOut)
async def get_document(document_id: str, service: Service) -> dict[str, Any]:
    d = await service.get(KnowledgeDocument, document_id, "Document not found")
    return {"document_id": d.document_id, **views.document_view(d)}


@router.delete(
    "/knowledge-base/{document_id}", tags=["knowledge-base"], response_model=Done, responses=WRITE_RESPONSES
)
async def delete_document(document_id: str, service: Service) -> JSONResponse:
    return respond(await KnowledgeBase(service).delete(document_id))
