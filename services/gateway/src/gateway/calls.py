"""Single outbound calls (api-v1.md 9): everything is checked before anything is dialled, then one
`place_call` command goes to telephony and the caller gets its outcome. And, beyond the spec, a
placed call as the read model knows it, with its transcript and post-call analysis."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from contracts import topics
from contracts.calling import number_time_zones
from contracts.quiet_hours import RULES_FILE, QuietHoursRules, load_rules, outside_quiet_hours_problem
from contracts.telephony import CustomerInfo, PlaceCall
from gateway import domain, views
from gateway.domain import Outcome
from gateway.errors import Unprocessable
from gateway.models import Agent, Call, DoNotCall, PhoneNumber
from gateway.results import analysis_view
from gateway.schemas import OutboundCallRequest
from gateway.service import GatewayService

log = structlog.get_logger("gateway.calls")

Provider = Literal["twilio", "sip_trunk"]

ROUTE_FOR: dict[str, str] = {
    "twilio": "/api/v1/phone-numbers/twilio/outbound-call",
    "sip_trunk": "/api/v1/sip-trunk/outbound-call",
}


def check_provider(phone: PhoneNumber, provider: Provider) -> None:
    """422 naming the right route when the calling number belongs to the other provider."""
    if phone.provider != provider:
        raise Unprocessable(
            f"Phone number {phone.phone_number_id} is a {phone.provider} number",
            f"Use {ROUTE_FOR[phone.provider]}",
        )


def quiet_hours_overridden(
    body: OutboundCallRequest, to_number: str, now: datetime, rules: QuietHoursRules
) -> bool:
    """Whether the call goes ahead only because the request overrides the platform's quiet hours
    (the call then records the override). 422 when they forbid it at `now` in any of the number's
    zones and the request does not override them."""
    problem = outside_quiet_hours_problem(now, to_number, number_time_zones(to_number), rules)
    if problem is None:
        return False
    if not body.override_quiet_hours:
        raise Unprocessable(
            "Outside quiet hours", f'{problem}. Send "override_quiet_hours": true to call anyway.'
        )
    # The number is personal data: the call's own record (quiet_hours_overridden) says which.
    log.warning(
        "gateway.call.quiet_hours_overridden",
        agent_id=body.agent_id,
        phone_number_id=body.agent_phone_number_id,
    )
    return True


class Calls:
    """The use cases behind the outbound-call routes and `/calls/{id}`."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.settings = service.settings

    async def place(
        self, body: OutboundCallRequest, provider: Provider, now: datetime | None = None
    ) -> Outcome:
        """Check the number (E.164), the agent, the calling number (its provider), the customer's
        phone and the quiet hours at `now` (default: the clock), then place the call: its outcome
        (the spec's answer, or the dial's error). NotFound, Unprocessable; nothing is dialled then."""
        to_number = domain.e164(body.to_number)
        await self.service.get(Agent, body.agent_id, "Agent not found")
        phone = await self.service.get(PhoneNumber, body.agent_phone_number_id, "Phone number not found")
        check_provider(phone, provider)
        await self._check_not_opted_out(to_number)
        customer = body.customer_info
        if customer is not None and customer.phone is not None:
            domain.e164(customer.phone)
        rules = load_rules(self.settings.quiet_hours_file or RULES_FILE)
        overridden = quiet_hours_overridden(body, to_number, now or datetime.now(UTC), rules)
        credentials = body.ecommerce_credentials
        command = PlaceCall(
            provider=provider,
            agent_id=body.agent_id,
            agent_phone_number_id=body.agent_phone_number_id,
            to_number=to_number,
            first_message=body.first_message,
            dynamic_variables=body.dynamic_variables,
            customer_info=CustomerInfo(**customer.model_dump()) if customer else None,
            **domain.ecommerce_fields(self.settings.keyring, credentials),
            sender_email=body.sender_email,
            quiet_hours_overridden=overridden,
        )
        return await self.service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=to_number)

    async def _check_not_opted_out(self, to_number: str) -> None:
        """A number on the do-not-call list is never dialled, by a single call either: a callee who
        opted out by voice heard "this number will not be called again". Unprocessable; removing
        the number from the list (DELETE /do-not-call/{number}) is the way to call it again."""
        listed = await self.service.find(DoNotCall, to_number)
        if listed is not None:
            source = f" (opted out by voice in {listed.conversation_id})" if listed.source == "voice" else ""
            raise Unprocessable(
                "On the do-not-call list",
                f"{to_number} is on the do-not-call list{source}; remove it from the list "
                f"(DELETE /api/v1/do-not-call/{to_number}) to call it",
            )

    async def call(self, conversation_id: str) -> dict[str, Any]:
        """The call (`views.call_view`) with its `transcript` (null until whole) and `analysis`
        (null until the post-call webhook came). NotFound."""
        call = await self.service.get(Call, conversation_id, "Call not found")
        return {
            **views.call_view(call),
            "transcript": await self.service.transcript(conversation_id),
            "analysis": analysis_view(await self.service.analysis(conversation_id)),
        }
