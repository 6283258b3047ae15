"""How every Kafka client of ours connects: the one place TLS and SASL settings become client options.

Managed Kafka needs TLS and SASL (PLAIN or SCRAM) with a CA file. `kafka_security(settings)` builds
FastStream's security object (for `KafkaBroker(security=...)`); `kafka_client_kwargs(settings)` turns
that same object into aiokafka keyword arguments (FastStream's own parser) for the raw clients (admin
client, dead-letter tool, test harness). Nothing else reads the KAFKA_SECURITY_* settings.
"""

from __future__ import annotations

import ssl
from typing import Any

from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from bus.settings import BusSettings

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


class KafkaSecurityError(ValueError):
    """The TLS/SASL settings cannot connect (a file that cannot be read, a bad certificate)."""


def _ssl_context(settings: BusSettings) -> ssl.SSLContext:
    """Server verified against KAFKA_SSL_CAFILE (else the system's CAs), hostname checked; a client
    certificate when KAFKA_SSL_CERTFILE/KEYFILE are set (mutual TLS)."""
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise KafkaSecurityError(f"Kafka TLS files unusable (KAFKA_SSL_*): {exc}") from exc
    return context


def kafka_security(settings: BusSettings) -> BaseSecurity | None:
    """FastStream's security object for KAFKA_SECURITY_PROTOCOL; None for PLAINTEXT.

    The combination was validated when the settings were read (BusSettings)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = _ssl_context(settings) if protocol in ("SSL", "SASL_SSL") else None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    assert settings.kafka_sasl_mechanism and settings.kafka_sasl_username and settings.kafka_sasl_password
    return _SASL[settings.kafka_sasl_mechanism](
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=protocol == "SASL_SSL",
    )


def kafka_client_kwargs(settings: BusSettings) -> dict[str, Any]:
    """`bootstrap_servers` and the security options for any aiokafka client
    (`AIOKafkaProducer`, `AIOKafkaConsumer`, `AIOKafkaAdminClient`)."""
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **parse_security(kafka_security(settings))}
