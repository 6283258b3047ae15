"""Transaction scope: the request or message owns the transaction; services never commit."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bus.uow import TransactionScope
from gateway.models import inbox
from gateway.repository import (
    Analyses,
    ApiKeys,
    Changes,
    IdempotencyKeys,
    Operations,
    RateBuckets,
    ReadModels,
    Recipients,
    Results,
    Transcripts,
    Uploads,
    WebhookDeliveries,
)


class UnitOfWork(TransactionScope):
    """The gateway publishes commands to each service's topic, so every `publish` names its topic."""

    read_models: ReadModels
    operations: Operations
    uploads: Uploads
    idempotency: IdempotencyKeys
    recipients: Recipients
    results: Results
    transcripts: Transcripts
    analyses: Analyses
    changes: Changes
    api_keys: ApiKeys
    rate_buckets: RateBuckets
    webhook_deliveries: WebhookDeliveries
    inbox_table = inbox

    def _open(self, session: AsyncSession) -> None:
        self.read_models = ReadModels(session)
        self.operations = Operations(session)
        self.uploads = Uploads(session)
        self.idempotency = IdempotencyKeys(session)
        self.recipients = Recipients(session)
        self.results = Results(session)
        self.transcripts = Transcripts(session)
        self.analyses = Analyses(session)
        self.changes = Changes(session)
        self.api_keys = ApiKeys(session)
        self.rate_buckets = RateBuckets(session)
        self.webhook_deliveries = WebhookDeliveries(session)
