"""Use cases: one per provisioning command.

ElevenLabs has no idempotency keys, so every command runs through the upstream-command ledger
(`bus.ledger`, three steps): a delivery that finds its command `started` by an earlier one
*recovers* (looks the resource up upstream before creating it again); a create whose answer is
lost (timeout, 5xx: `OutcomeUnknownError`) is recovered the same way, by the same lookup
(`ElevenLabsClient.create_once`), never by a blind second POST; exactly one outcome event (the
success event or `CommandFailed`) is written to the outbox with the local records.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import structlog

from bus.errors import CommandError
from bus.ledger import CommandRunner, UpstreamCommand, caused_by
from bus.ledger import Outcome as LedgerOutcome
from bus.secrets import UploadUrlRefused, check_upload_url, mint_tool_token
from contracts.base import utcnow
from contracts.provisioning import (
    AgentCreated,
    AgentDeleted,
    AgentUpdated,
    CreateAgent,
    CreateCallTool,
    CreateEcommerceTools,
    CreateEmailTemplate,
    CreateKnowledgeDocument,
    CreateWebhookTool,
    DeleteAgent,
    DeleteEmailTemplate,
    DeleteKnowledgeDocument,
    DeleteTool,
    EcommerceToolsCreated,
    EmailTemplateCreated,
    EmailTemplateDeleted,
    KnowledgeDocumentCreated,
    KnowledgeDocumentDeleted,
    RotateToolToken,
    ToolCreated,
    ToolDeleted,
    ToolRecord,
    ToolToken,
    ToolTokenRotated,
    UpdateAgent,
)
from elevenlabs_client import ElevenLabsClient, UpstreamError
from provisioning import domain
from provisioning.domain import JSON
from provisioning.settings import Settings
from provisioning.uow import UnitOfWork

log = structlog.get_logger("provisioning.service")

_R = TypeVar("_R")

# KB documents carry their creation time; allow for clock skew between us and ElevenLabs.
_KB_RECOVERY_SKEW_S = 5

Outcome = LedgerOutcome[UnitOfWork]


class ProvisioningService:
    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        elevenlabs: ElevenLabsClient,
        http: httpx.AsyncClient,
        settings: Settings,
        *,
        commands: CommandRunner[UnitOfWork],
    ) -> None:
        self._uow = uow
        self._commands = commands
        self.elevenlabs = elevenlabs
        self._http = http
        self._settings = settings

    async def _adopt_or_create(
        self,
        upstream: UpstreamCommand,
        create: Callable[[], Awaitable[_R]],
        find: Callable[[], Awaitable[_R | None]],
        *,
        what: str,
    ) -> _R:
        """The one recovery path: after a crash (`upstream.recovering`) or a lost answer
        (`OutcomeUnknownError`), `find` looks up what this command may already have created
        before anything is created again."""
        if upstream.recovering and (found := await find()) is not None:
            return found
        return await self.elevenlabs.create_once(create, find, what=what)

    # ---- tools -------------------------------------------------------------------------------

    async def create_webhook_tool(self, command: CreateWebhookTool) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            config = domain.webhook_tool_config(command)
            tool = await self._adopt_or_create(
                upstream,
                lambda: self.elevenlabs.create_tool(config),
                lambda: self._find_custom_tool(config),
                what="tool",
            )
            record = domain.tool_record(tool, "webhook", int(time.time()))
            event = caused_by(command, ToolCreated, tool=record)
            return Outcome(event=event, key=record.tool_id, resource_id=record.tool_id)

        await self._commands.run(command, action)

    async def _find_custom_tool(self, config: JSON) -> JSON | None:
        # Tools have no creation time upstream: match by name, URL and method.
        for tool in await self.elevenlabs.list_tools(search=config["name"]):
            found = tool.get("tool_config") or {}
            schema = found.get("api_schema") or {}
            if (
                found.get("name") == config["name"]
                and schema.get("url") == config["api_schema"]["url"]
                and schema.get("method", "GET") == config["api_schema"]["method"]
            ):
                return tool
        return None

    async def create_ecommerce_tools(self, command: CreateEcommerceTools) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            created: list[str] = []
            records = []
            try:
                for spec in domain.ECOMMERCE_TOOLS:
                    tool = await self._ecommerce_tool(command, spec, upstream.recovering, created)
                    token = ToolToken(token_id=command.message_id, route=spec.route, generation=1)
                    records.append(domain.tool_record(tool, spec.purpose, int(time.time()), token))
            except CommandError:
                await self._delete_quietly(created)
                raise
            products, orders = records
            event = caused_by(command, EcommerceToolsCreated, products_tool=products, orders_tool=orders)
            return Outcome(
                event=event,
                key=command.message_id,
                resource_id=f"{products.tool_id},{orders.tool_id}",
                local=[self._remember_token(products), self._remember_token(orders)],
            )

        await self._commands.run(command, action)

    async def create_call_tool(self, command: CreateCallTool) -> None:
        """A call-control tool (`schedule_callback` or `opt_out`) calling tool-webhooks with its own
        tool token, like the e-commerce tools; answered by `ToolCreated`."""
        spec = domain.CALL_TOOLS[command.kind]

        async def action(upstream: UpstreamCommand) -> Outcome:
            def config(secret_id: str) -> JSON:
                header = self._settings.tool_auth_header
                return domain.call_tool_config(command.webhook_base_url, spec, secret_id, header)

            tool, _ = await self._secured_tool(
                command.message_id, spec.short_name, spec.route, spec.name, upstream.recovering, config
            )
            token = ToolToken(token_id=command.message_id, route=spec.route, generation=1)
            record = domain.tool_record(tool, spec.purpose, int(time.time()), token)
            event = caused_by(command, ToolCreated, tool=record)
            return Outcome(
                event=event,
                key=record.tool_id,
                resource_id=record.tool_id,
                local=[self._remember_token(record)],
            )

        await self._commands.run(command, action)

    async def _ecommerce_tool(
        self, command: CreateEcommerceTools, spec: domain.EcommerceTool, recovering: bool, created: list[str]
    ) -> JSON:
        def config(secret_id: str) -> JSON:
            header = self._settings.tool_auth_header
            return domain.ecommerce_tool_config(command.webhook_base_url, spec, secret_id, header)

        tool, new = await self._secured_tool(
            command.message_id, spec.short_name, spec.route, spec.name, recovering, config
        )
        if new:
            created.append(str(tool["id"]))
        return tool

    async def _secured_tool(
        self,
        nonce: str,
        purpose: str,
        route: str,
        tool_name: str,
        recovering: bool,
        config: Callable[[str], JSON],
    ) -> tuple[JSON, bool]:
        """A webhook tool sending its tool token from a per-command workspace secret.

        `config(secret_id)` builds the tool_config. Recovery finds the secret by its name, then the
        tool that sends it. Returns (tool, created_now).
        """
        name = domain.secret_name(purpose, nonce)
        secret_id: str | None = None
        if recovering:
            secret_id = await self._find_secret(name)
            if secret_id is not None:
                tool = await self._find_tool_with_secret(tool_name, secret_id)
                if tool is not None:
                    return tool, False
        if secret_id is None:
            token = mint_tool_token(self._settings.keyring, route, nonce, 1)

            async def create_secret() -> str:
                return str((await self.elevenlabs.create_secret(name, token))["secret_id"])

            secret_id = await self.elevenlabs.create_once(
                create_secret, lambda: self._find_secret(name), what="secret"
            )
        found_secret_id = secret_id
        tool = await self.elevenlabs.create_once(
            lambda: self.elevenlabs.create_tool(config(found_secret_id)),
            lambda: self._find_tool_with_secret(tool_name, found_secret_id),
            what="tool",
        )
        return tool, True

    def _remember_token(self, record: ToolRecord) -> Callable[[UnitOfWork], Awaitable[None]]:
        """The local write recording what `record`'s token names (and its secret), for rotation."""
        token = record.token
        secret_id = domain.tool_secret_id(
            {"tool_config": record.tool_config}, self._settings.tool_auth_header
        )
        assert token is not None and secret_id is not None

        async def remember(uow: UnitOfWork) -> None:
            await uow.tool_tokens.put(
                record.tool_id, token.token_id, token.route, token.generation, secret_id
            )

        return remember

    async def rotate_tool_token(self, command: RotateToolToken) -> None:
        """A new token for a tool that calls tool-webhooks: minted (same lineage, next generation),
        stored in a new workspace secret, the tool's header pointed at it, the old secret deleted.
        tool-webhooks accepts the previous generation until `previous_valid_until_unix`."""

        async def action(upstream: UpstreamCommand) -> Outcome:
            header = self._settings.tool_auth_header
            try:
                tool = await self.elevenlabs.get_tool(command.tool_id)
            except UpstreamError as exc:
                if exc.status_code == 404:
                    raise CommandError(404, f"Tool not found: {command.tool_id}", exc.detail) from exc
                raise
            route, old_secret_id = domain.tool_token_route(tool), domain.tool_secret_id(tool, header)
            if route is None or old_secret_id is None:
                raise CommandError(
                    422,
                    "Tool has no token",
                    "Only the e-commerce and e-mail template tools carry a tool token",
                )
            async with self._uow() as uow:
                known = await uow.tool_tokens.get(command.tool_id)
            if known is not None and known.route == route:
                token = ToolToken(token_id=known.token_id, route=route, generation=known.generation + 1)
            else:  # a tool from before tokens were recorded: a lineage of its own from now on
                token = ToolToken(token_id=command.message_id, route=route, generation=1)
            name = domain.secret_name(domain.ROTATED_SHORT_NAME, command.message_id)
            value = mint_tool_token(self._settings.keyring, route, token.token_id, token.generation)

            async def create_secret() -> str:
                return str((await self.elevenlabs.create_secret(name, value))["secret_id"])

            secret_id = await self._adopt_or_create(
                upstream, create_secret, lambda: self._find_secret(name), what="secret"
            )
            # PATCH is idempotent: a retry simply points the header at the same secret again.
            updated = await self.elevenlabs.update_tool(
                command.tool_id, domain.with_token_secret(tool, header, secret_id)
            )
            if old_secret_id != secret_id:
                await self._delete_secret_quietly(old_secret_id)
            valid_until = int(time.time()) + self._settings.tool_token_grace_s
            record = domain.tool_record(updated, token=token)

            async def remember(uow: UnitOfWork) -> None:
                await uow.tool_tokens.put(command.tool_id, token.token_id, route, token.generation, secret_id)

            event = caused_by(
                command,
                ToolTokenRotated,
                tool_id=command.tool_id,
                tool_config=record.tool_config,
                token=token,
                previous_valid_until_unix=valid_until,
            )
            return Outcome(event=event, key=command.tool_id, resource_id=command.tool_id, local=[remember])

        await self._commands.run(command, action)

    async def _delete_secret_quietly(self, secret_id: str) -> None:
        """Best effort: the old token is refused after its grace period anyway; a secret left behind
        holds nothing that still opens anything."""
        try:
            await self.elevenlabs.delete_secret(secret_id)
        except UpstreamError as exc:
            log.warning("provisioning.tool_token.old_secret_kept", secret_id=secret_id, error=exc.error)

    async def _find_secret(self, name: str) -> str | None:
        secrets = await self.elevenlabs.list_secrets()
        return next((str(s["secret_id"]) for s in secrets if s.get("name") == name), None)

    async def _find_tool_with_secret(self, tool_name: str, secret_id: str) -> JSON | None:
        header = self._settings.tool_auth_header
        for tool in await self.elevenlabs.list_tools(search=tool_name):
            if domain.tool_secret_id(tool, header) == secret_id:
                return tool
        return None

    async def _delete_quietly(self, tool_ids: list[str]) -> None:
        """Best effort: don't leave half of a failed pair behind."""
        for tool_id in tool_ids:
            try:
                await self.elevenlabs.delete_tool(tool_id)
            except CommandError as exc:
                log.warning("provisioning.tool.cleanup_failed", tool_id=tool_id, error=str(exc))

    async def delete_tool(self, command: DeleteTool) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            await self._delete(
                upstream, self.elevenlabs.delete_tool(command.tool_id), "Tool", command.tool_id
            )

            async def forget(uow: UnitOfWork) -> None:
                await uow.tool_tokens.remove(command.tool_id)

            event = caused_by(command, ToolDeleted, tool_id=command.tool_id)
            return Outcome(event=event, key=command.tool_id, resource_id=command.tool_id, local=[forget])

        await self._commands.run(command, action)

    @staticmethod
    async def _delete(upstream: UpstreamCommand, call: Awaitable[None], kind: str, resource_id: str) -> None:
        """Deletes are idempotent: a 404 when recovering means an interrupted earlier delivery already
        deleted it."""
        try:
            await call
        except UpstreamError as exc:
            if exc.status_code != 404:
                raise
            if not upstream.recovering:
                raise CommandError(404, f"{kind} not found: {resource_id}", exc.detail) from exc

    # ---- e-mail templates --------------------------------------------------------------------

    async def create_email_template(self, command: CreateEmailTemplate) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            name = command.name
            async with self._uow() as uow:
                existing = await uow.email_templates.get(name)
            if existing is not None:
                if upstream.recovering:
                    # Our command never finished, so the row is another command's: an earlier
                    # delivery lost the race for the name; don't leave its tool behind.
                    await self._delete_orphan_email_tool(command, existing.tool_id)
                raise CommandError(409, f"Template already exists: {name}")

            def config(secret_id: str) -> JSON:
                return domain.email_tool_config(command, secret_id, self._settings.tool_auth_header)

            tool, _ = await self._secured_tool(
                command.message_id,
                domain.EMAIL_SHORT_NAME,
                domain.email_tool_route(name),
                name,
                upstream.recovering,
                config,
            )
            created_at = utcnow()
            token = ToolToken(token_id=command.message_id, route=domain.email_tool_route(name), generation=1)
            tool_record = domain.tool_record(tool, "email", int(created_at.timestamp()), token)
            template = domain.email_template_record(command, tool_record.tool_id, created_at)

            async def remember(uow: UnitOfWork) -> None:
                await uow.email_templates.add(template, created_at)

            event = caused_by(command, EmailTemplateCreated, template=template, tool=tool_record)
            return Outcome(
                event=event,
                key=name,
                resource_id=tool_record.tool_id,
                local=[remember, self._remember_token(tool_record)],
            )

        await self._commands.run(command, action)

    async def _delete_orphan_email_tool(self, command: CreateEmailTemplate, kept_tool_id: str) -> None:
        secret_id = await self._find_secret(domain.secret_name(domain.EMAIL_SHORT_NAME, command.message_id))
        if secret_id is None:
            return
        tool = await self._find_tool_with_secret(command.name, secret_id)
        if tool is not None and str(tool["id"]) != kept_tool_id:
            await self._delete_quietly([str(tool["id"])])

    async def delete_email_template(self, command: DeleteEmailTemplate) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            template_id = command.template_id
            async with self._uow() as uow:
                template = await uow.email_templates.get(template_id)
                tool_id = template.tool_id if template is not None else None
            if tool_id is None:
                raise CommandError(404, f"Template not found: {template_id}")
            try:
                await self.elevenlabs.delete_tool(tool_id)
            except UpstreamError as exc:
                # Already gone: deleted by an interrupted earlier upstream, or out of band. The
                # template is still ours to delete, or it could never be deleted at all.
                if exc.status_code != 404:
                    raise
                log.info("provisioning.email_template.tool_already_gone", tool_id=tool_id)

            async def forget(uow: UnitOfWork) -> None:
                await uow.email_templates.remove(template_id)
                await uow.tool_tokens.remove(tool_id)

            event = caused_by(command, EmailTemplateDeleted, template_id=template_id, tool_id=tool_id)
            return Outcome(event=event, key=template_id, resource_id=tool_id, local=[forget])

        await self._commands.run(command, action)

    # ---- knowledge base ----------------------------------------------------------------------

    async def create_knowledge_document(self, command: CreateKnowledgeDocument) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            name = domain.document_name(
                command.name, command.source_type, command.text, command.url, command.file_name
            )
            document_id = await self._adopt_or_create(
                upstream,
                await self._document_upload(command, name),
                lambda: self._find_document(name, command.source_type, upstream),
                what="knowledge base document",
            )
            record = domain.document_record(
                await self.elevenlabs.get_kb_document(document_id), command.source_type
            )

            async def remember(uow: UnitOfWork) -> None:
                await uow.documents.upsert(record.document_id, record.name, record.type)

            event = caused_by(command, KnowledgeDocumentCreated, document=record)
            return Outcome(
                event=event, key=record.document_id, resource_id=record.document_id, local=[remember]
            )

        await self._commands.run(command, action)

    async def _find_document(self, name: str, source_type: str, upstream: UpstreamCommand) -> str | None:
        since = upstream.started_at.timestamp() - _KB_RECOVERY_SKEW_S
        for doc in await self.elevenlabs.list_kb_documents(search=name):
            created_at = (doc.get("metadata") or {}).get("created_at_unix_secs") or 0
            if doc.get("name") == name and doc.get("type") == source_type and created_at >= since:
                return str(doc["id"])
        return None

    async def _document_upload(
        self, command: CreateKnowledgeDocument, name: str
    ) -> Callable[[], Awaitable[str]]:
        """The document's create call, ready to (re)run: inputs checked, any file downloaded once."""
        folder = command.parent_folder_id
        source = command.source_type
        if source == "text" and not command.text:
            raise CommandError(422, "Validation error", "text is required when source_type is text")
        if source == "url" and not command.url:
            raise CommandError(422, "Validation error", "url is required when source_type is url")
        content = await self._download(command) if source not in ("text", "url") else b""

        async def upload() -> str:
            if source == "text":
                created = await self.elevenlabs.create_kb_text(command.text or "", name, folder)
            elif source == "url":
                created = await self.elevenlabs.create_kb_url(command.url or "", name, folder)
            else:
                created = await self.elevenlabs.create_kb_file(
                    content,
                    command.file_name or name,
                    command.file_content_type or "application/octet-stream",
                    name,
                    folder,
                )
            return str(created["id"])

        return upload

    async def _download(self, command: CreateKnowledgeDocument) -> bytes:
        """Fetch the claim-checked upload from the gateway: bounded size, checksum verified.

        Only a live upload URL the gateway signed (bus.secrets.check_upload_url) is fetched: anyone who
        can publish a command could otherwise make us fetch internal URLs and store them upstream.
        """
        if not command.file_url:
            raise CommandError(422, "Validation error", "file_url is required when source_type is file")
        try:
            check_upload_url(
                command.file_url,
                base_url=self._settings.gateway_base_url,
                keyring=self._settings.keyring,
                now_unix=int(time.time()),
            )
        except UploadUrlRefused as exc:
            log.warning("provisioning.upload_url_refused", reason=str(exc))
            raise CommandError(
                422, "Upload URL refused", f"file_url is not a signed upload URL of the gateway: {exc}"
            ) from exc
        limit = self._settings.kb_file_max_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            async with self._http.stream(
                "GET", command.file_url, timeout=self._settings.upstream_timeout_s, follow_redirects=False
            ) as response:
                if response.status_code in (403, 404, 410):
                    raise CommandError(
                        422, "Upload not available", f"Upload fetch returned {response.status_code}"
                    )
                if not response.is_success:
                    raise CommandError(
                        502, "Upload unavailable", f"Upload fetch returned {response.status_code}"
                    )
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise CommandError(413, "File too large", f"Uploads are limited to {limit} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise CommandError(502, "Upload unavailable", repr(exc)) from exc
        content = b"".join(chunks)
        if command.file_sha256 and hashlib.sha256(content).hexdigest() != command.file_sha256.lower():
            raise CommandError(422, "Upload checksum mismatch", "SHA-256 of the downloaded file differs")
        return content

    async def delete_knowledge_document(self, command: DeleteKnowledgeDocument) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            document_id = command.document_id
            await self._delete(
                upstream, self.elevenlabs.delete_kb_document(document_id), "Document", document_id
            )

            async def forget(uow: UnitOfWork) -> None:
                await uow.documents.remove(document_id)

            event = caused_by(command, KnowledgeDocumentDeleted, document_id=document_id)
            return Outcome(event=event, key=document_id, resource_id=document_id, local=[forget])

        await self._commands.run(command, action)

    # ---- agents ------------------------------------------------------------------------------

    async def _locators(self, document_ids: list[str]) -> list[JSON]:
        """KB locators, from our table when we know the document, else from ElevenLabs."""
        async with self._uow() as uow:
            known = {
                doc_id: domain.kb_locator(doc.id, doc.name, doc.type)
                for doc_id, doc in (await uow.documents.get_many(document_ids)).items()
            }
        locators = []
        for doc_id in document_ids:
            if doc_id not in known:
                try:
                    doc = await self.elevenlabs.get_kb_document(doc_id)
                except UpstreamError as exc:
                    if exc.status_code == 404:
                        raise CommandError(404, f"Knowledge base document not found: {doc_id}") from exc
                    raise
                known[doc_id] = domain.kb_locator(
                    doc_id, str(doc.get("name", "")), str(doc.get("type", "file"))
                )
            locators.append(known[doc_id])
        return locators

    async def create_agent(self, command: CreateAgent) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            body = domain.agent_create_body(command, await self._locators(command.knowledge_base_ids))
            agent_id = await self._adopt_or_create(
                upstream,
                lambda: self.elevenlabs.create_agent(body),
                lambda: self._find_agent(command),
                what="agent",
            )
            record = domain.agent_record(await self.elevenlabs.get_agent(agent_id))
            event = caused_by(command, AgentCreated, agent=record)
            return Outcome(event=event, key=record.agent_id, resource_id=record.agent_id)

        await self._commands.run(command, action)

    async def _find_agent(self, command: CreateAgent) -> str | None:
        tag = domain.command_tag(command.message_id)
        for summary in await self.elevenlabs.list_agents(search=command.name):
            agent_id = str(summary["agent_id"])
            agent = summary if "tags" in summary else await self.elevenlabs.get_agent(agent_id)
            if domain.has_tag(agent, tag):
                return agent_id
        return None

    async def update_agent(self, command: UpdateAgent) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            locators = (
                await self._locators(command.knowledge_base_ids)
                if command.knowledge_base_ids is not None
                else None
            )
            body = domain.agent_patch_body(command, locators)
            try:  # PATCH is idempotent: a retry simply applies it again
                agent = await self.elevenlabs.patch_agent(command.agent_id, body)
            except UpstreamError as exc:
                if exc.status_code == 404:
                    raise CommandError(404, f"Agent not found: {command.agent_id}", exc.detail) from exc
                raise
            record = domain.agent_record(agent)
            event = caused_by(command, AgentUpdated, agent=record)
            return Outcome(event=event, key=record.agent_id, resource_id=record.agent_id)

        await self._commands.run(command, action)

    async def delete_agent(self, command: DeleteAgent) -> None:
        async def action(upstream: UpstreamCommand) -> Outcome:
            await self._delete(
                upstream, self.elevenlabs.delete_agent(command.agent_id), "Agent", command.agent_id
            )
            event = caused_by(command, AgentDeleted, agent_id=command.agent_id)
            return Outcome(event=event, key=command.agent_id, resource_id=command.agent_id)

        await self._commands.run(command, action)
