"""Knowledge base (api-v1.md section 4)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import File, Form, UploadFile
from fastapi.responses import JSONResponse

from contracts.provisioning import CreateKnowledgeDocument, DeleteKnowledgeDocument
from gateway import views
from gateway.domain import Outcome
from gateway.errors import Unprocessable
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
    return respond(await service.execute(CreateKnowledgeDocument(source_type="text", **body.model_dump())))


@router.post(
    "/knowledge-base/url",
    tags=["knowledge-base"],
    response_model=DocumentCreatedOut,
    responses=WRITE_RESPONSES,
)
async def create_url_document(body: UrlDocumentRequest, service: Service) -> JSONResponse:
    return respond(await service.execute(CreateKnowledgeDocument(source_type="url", **body.model_dump())))


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
    return respond(await _file_document(service, file, name, parent_folder_id))


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
    if source_type == "text":
        if not text:
            raise Unprocessable("Validation error", "text is required when source_type is text")
        body = TextDocumentRequest(text=text, name=name, parent_folder_id=parent_folder_id)
        return respond(
            await service.execute(CreateKnowledgeDocument(source_type="text", **body.model_dump()))
        )
    if source_type == "url":
        if not url:
            raise Unprocessable("Validation error", "url is required when source_type is url")
        url_body = UrlDocumentRequest(url=url, name=name, parent_folder_id=parent_folder_id)
        return respond(
            await service.execute(CreateKnowledgeDocument(source_type="url", **url_body.model_dump()))
        )
    if source_type == "file":
        if file is None:
            raise Unprocessable("Validation error", "file is required when source_type is file")
        return respond(await _file_document(service, file, name, parent_folder_id))
    raise Unprocessable("Validation error", "source_type must be one of: text, url, file")


async def _file_document(
    service: Service, file: UploadFile, name: str | None, parent_folder_id: str | None
) -> Outcome:
    file_name = file.filename or "upload"
    if len(file_name) > MAX_DOCUMENT_NAME_CHARS:
        # Kept as the upload's and (without `name`) the document's name: both hold 500 characters.
        raise Unprocessable("Validation error", f"file name: at most {MAX_DOCUMENT_NAME_CHARS} characters")
    limit = service.settings.kb_max_upload_bytes
    # Read one byte past the limit so an oversized upload is refused without buffering all of it.
    content = await file.read(limit + 1)
    staged = await service.stage_upload(file_name, content)
    command = staged.model_copy(update={"name": name or file.filename, "parent_folder_id": parent_folder_id})
    return await service.execute(command)


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
    await service.get(KnowledgeDocument, document_id, "Document not found")
    return respond(await service.execute(DeleteKnowledgeDocument(document_id=document_id), key=document_id))
