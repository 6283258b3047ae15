"""Customer sessions (api-v1.md 5.5): who is on a conversation, for e-mail personalisation; stored
and deleted through telephony, which keeps them."""

from __future__ import annotations

from contracts import topics
from contracts.telephony import CustomerInfo, DeleteCustomerSession, StoreCustomerSession
from gateway import domain
from gateway.domain import Outcome
from gateway.models import CustomerSession
from gateway.schemas import CustomerSessionRequest
from gateway.service import GatewayService


class Sessions:
    """The use cases behind `/email-templates/sessions`. Each answers its command's outcome."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service

    async def store(self, body: CustomerSessionRequest) -> Outcome:
        """BadRequest for a customer phone not in E.164."""
        if body.customer_info.phone is not None:
            domain.e164(body.customer_info.phone)
        command = StoreCustomerSession(
            conversation_id=body.conversation_id,
            customer_info=CustomerInfo(**body.customer_info.model_dump()),
        )
        return await self.service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=body.conversation_id)

    async def delete(self, conversation_id: str) -> Outcome:
        """NotFound."""
        await self.service.get(CustomerSession, conversation_id, "Session not found")
        command = DeleteCustomerSession(conversation_id=conversation_id)
        return await self.service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=conversation_id)
