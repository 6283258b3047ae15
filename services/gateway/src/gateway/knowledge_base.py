"""Knowledge base (api-v1.md 4): documents from text, a URL or an uploaded file, created and deleted
through provisioning. An upload is checked and kept here; the command carries a signed URL to it
(a claim check), which provisioning fetches from `/internal/uploads/{id}`."""

from __future__ import annotations

import hashlib
import time
import uuid

from fastapi import UploadFile

from bus.secrets import upload_url, verify_upload_signature
from contracts.provisioning import CreateKnowledgeDocument, DeleteKnowledgeDocument
from gateway import domain
from gateway.domain import Outcome
from gateway.errors import NotFound, Unprocessable
from gateway.models import KnowledgeDocument, Upload
from gateway.schemas import MAX_DOCUMENT_NAME_CHARS, TextDocumentRequest, UrlDocumentRequest
from gateway.service import GatewayService


class KnowledgeBase:
    """The use cases behind `/knowledge-base` and the signed upload URLs."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.settings = service.settings

    async def create_text(self, body: TextDocumentRequest) -> Outcome:
        return await self.service.execute(CreateKnowledgeDocument(source_type="text", **body.model_dump()))

    async def create_url(self, body: UrlDocumentRequest) -> Outcome:
        return await self.service.execute(CreateKnowledgeDocument(source_type="url", **body.model_dump()))

    async def create_file(self, file: UploadFile, name: str | None, parent_folder_id: str | None) -> Outcome:
        """A document from an upload (named `name`, else the file's name). Unprocessable for a file
        name over MAX_DOCUMENT_NAME_CHARS; the upload's own checks (`stage_upload`)."""
        file_name = file.filename or "upload"
        if len(file_name) > MAX_DOCUMENT_NAME_CHARS:
            # Kept as the upload's and (without `name`) the document's name: both hold 500 characters.
            raise Unprocessable(
                "Validation error", f"file name: at most {MAX_DOCUMENT_NAME_CHARS} characters"
            )
        limit = self.settings.kb_max_upload_bytes
        # Read one byte past the limit so an oversized upload is refused without buffering all of it.
        content = await file.read(limit + 1)
        staged = await self.stage_upload(file_name, content)
        command = staged.model_copy(
            update={"name": name or file.filename, "parent_folder_id": parent_folder_id}
        )
        return await self.service.execute(command)

    async def ingest(
        self,
        source_type: str,
        text: str | None,
        url: str | None,
        file: UploadFile | None,
        name: str | None,
        parent_folder_id: str | None,
    ) -> Outcome:
        """One form for the three sources (`source_type` text, url or file). Unprocessable when the
        source type is unknown or its field is missing."""
        if source_type == "text":
            if not text:
                raise Unprocessable("Validation error", "text is required when source_type is text")
            return await self.create_text(
                TextDocumentRequest(text=text, name=name, parent_folder_id=parent_folder_id)
            )
        if source_type == "url":
            if not url:
                raise Unprocessable("Validation error", "url is required when source_type is url")
            return await self.create_url(
                UrlDocumentRequest(url=url, name=name, parent_folder_id=parent_folder_id)
            )
        if source_type == "file":
            if file is None:
                raise Unprocessable("Validation error", "file is required when source_type is file")
            return await self.create_file(file, name, parent_folder_id)
        raise Unprocessable("Validation error", "source_type must be one of: text, url, file")

    async def delete(self, document_id: str) -> Outcome:
        await self.service.get(KnowledgeDocument, document_id, "Document not found")
        return await self.service.execute(DeleteKnowledgeDocument(document_id=document_id), key=document_id)

    async def stage_upload(self, file_name: str, content: bytes) -> CreateKnowledgeDocument:
        """Validate and keep an upload; the command carries a signed URL to it (claim check)."""
        content_type = domain.detect_upload_type(file_name, content, self.settings.kb_max_upload_bytes)
        upload_id = uuid.uuid4().hex
        digest = hashlib.sha256(content).hexdigest()
        async with self.service.uow() as uow:
            uow.uploads.add(
                Upload(
                    upload_id=upload_id,
                    file_name=file_name,
                    content_type=content_type,
                    sha256=digest,
                    content=content,
                )
            )
        expires = int(time.time()) + self.settings.upload_url_ttl_s
        return CreateKnowledgeDocument(
            source_type="file",
            file_url=upload_url(self.settings.upload_base_url, self.settings.keyring, upload_id, expires),
            file_name=file_name,
            file_content_type=content_type,
            file_sha256=digest,
        )

    async def upload(self, upload_id: str, expires: int, sig: str) -> Upload:
        """A kept upload, for a URL `stage_upload` signed that has not expired. NotFound otherwise."""
        if not verify_upload_signature(self.settings.keyring, upload_id, expires, sig, int(time.time())):
            raise NotFound("Upload not found")
        async with self.service.uow() as uow:
            upload = await uow.uploads.get(upload_id)
        if upload is None:
            raise NotFound("Upload not found")
        return upload
