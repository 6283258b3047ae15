"""Phone numbers (api-v1.md 8): import, reassign and delete them through telephony. Twilio tokens
and SIP passwords leave here only encrypted."""

from __future__ import annotations

from bus.secrets import Keyring
from contracts import topics
from contracts.telephony import (
    DeletePhoneNumber,
    ImportSipTrunkNumber,
    ImportTwilioNumber,
    SipCredentials,
    TrunkConfig,
    UpdatePhoneNumber,
)
from gateway import domain
from gateway.domain import Outcome
from gateway.errors import BadRequest
from gateway.models import Agent, PhoneNumber
from gateway.schemas import (
    InboundTrunkConfigIn,
    OutboundTrunkConfigIn,
    SipTrunkNumberRequest,
    TwilioNumberRequest,
    UpdatePhoneNumberRequest,
)
from gateway.service import GatewayService, refuse_if_in_use


def trunk_config(
    config: InboundTrunkConfigIn | OutboundTrunkConfigIn | None, keyring: Keyring
) -> TrunkConfig | None:
    """The command's trunk config: every field carried, the password encrypted.

    An inbound `address` is not carried: it can only name ElevenLabs' own endpoint (the schema
    refuses anything else) and ElevenLabs has no such setting.
    """
    if config is None:
        return None
    fields = config.model_dump(exclude={"credentials"}, exclude_none=True)
    if isinstance(config, InboundTrunkConfigIn):
        fields.pop("address", None)
    credentials = None
    if config.credentials is not None:
        password = config.credentials.password
        credentials = SipCredentials(
            username=config.credentials.username,
            password_encrypted=domain.encrypt(keyring, password, "password_encrypted") if password else None,
        )
    return TrunkConfig(**fields, credentials=credentials)


class PhoneNumbers:
    """The use cases behind `/phone-numbers`. Each answers its command's outcome."""

    def __init__(self, service: GatewayService) -> None:
        self.service = service
        self.keyring = service.settings.keyring

    async def import_twilio(self, body: TwilioNumberRequest) -> Outcome:
        """BadRequest for a number not in E.164."""
        command = ImportTwilioNumber(
            phone_number=domain.e164(body.phone_number),
            label=body.label,
            sid=body.sid,
            token_encrypted=domain.encrypt(self.keyring, body.token, "token_encrypted"),
        )
        return await self.service.execute(command, topic=topics.TELEPHONY_COMMANDS)

    async def import_sip_trunk(self, body: SipTrunkNumberRequest) -> Outcome:
        """BadRequest for a number not in E.164."""
        command = ImportSipTrunkNumber(
            phone_number=domain.e164(body.phone_number),
            label=body.label,
            supports_inbound=body.supports_inbound,
            supports_outbound=body.supports_outbound,
            agent_id=body.agent_id,
            outbound_trunk_config=trunk_config(body.outbound_trunk_config, self.keyring),
            inbound_trunk_config=trunk_config(body.inbound_trunk_config, self.keyring),
        )
        return await self.service.execute(command, topic=topics.TELEPHONY_COMMANDS)

    async def update(self, phone_number_id: str, body: UpdatePhoneNumberRequest) -> Outcome:
        """Its agent and/or label. NotFound (the number, the agent); BadRequest for neither."""
        await self.service.get(PhoneNumber, phone_number_id, "Phone number not found")
        if body.agent_id is None and body.label is None:
            raise BadRequest("Nothing to update", "Provide agent_id and/or label")
        if body.agent_id is not None:
            await self.service.get(Agent, body.agent_id, "Agent not found")
        command = UpdatePhoneNumber(phone_number_id=phone_number_id, agent_id=body.agent_id, label=body.label)
        return await self.service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=phone_number_id)

    async def delete(self, phone_number_id: str) -> Outcome:
        """Delete the number. NotFound; Conflict while a campaign not yet final calls from it
        (main number or caller-ID pool)."""
        await self.service.get(PhoneNumber, phone_number_id, "Phone number not found")
        await refuse_if_in_use(self.service, "phone number", phone_number_id=phone_number_id)
        command = DeletePhoneNumber(phone_number_id=phone_number_id)
        return await self.service.execute(command, topic=topics.TELEPHONY_COMMANDS, key=phone_number_id)
