"""Managed Kafka (TLS, SASL PLAIN/SCRAM): every client we build gets the security settings, an
incoherent combination is refused at start, and the password shows up in no log line and no repr."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine

import bus.dlq
import bus.runtime
from bus.dlq import DeadLetters
from bus.kafka_security import KafkaSecurityError, kafka_client_kwargs, kafka_security
from bus.runtime import Bus
from bus.settings import BusSettings
from bus.tables import make_bus_tables

PASSWORD = "s3cr3t-p4ssw0rd-never-logged"


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate, as a managed Kafka provider hands out."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Kafka CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _settings(**env: Any) -> BusSettings:
    return BusSettings.model_validate({"KAFKA_BOOTSTRAP_SERVERS": "kafka.example:9093", **env})


def _managed(ca_file: Path, mechanism: str = "SCRAM-SHA-512") -> BusSettings:
    return _settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM=mechanism,
        KAFKA_SASL_USERNAME="switchboard",
        KAFKA_SASL_PASSWORD=PASSWORD,
        KAFKA_SSL_CAFILE=str(ca_file),
    )


def _bus(settings: BusSettings) -> Bus:
    outbox, inbox = make_bus_tables(MetaData())
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never connected
    return Bus(settings, service="security-test", engine=engine, outbox_table=outbox, inbox_table=inbox)


def _assert_secured(options: dict[str, Any], mechanism: str) -> None:
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == "switchboard"
    assert options["sasl_plain_password"] == PASSWORD
    assert options["ssl_context"] is not None and options["ssl_context"].check_hostname


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_broker_s_producer_and_consumers_get_the_security_settings(ca_file: Path, mechanism: str) -> None:
    """Before: KafkaBroker was built from the bootstrap servers alone (no TLS, no SASL)."""
    broker = _bus(_managed(ca_file, mechanism)).kafka
    _assert_secured(broker._connection_kwargs, mechanism)  # the producer the relay publishes with
    _assert_secured(broker.config.broker_config.builder.keywords, mechanism)  # every subscriber's consumer


class _Recorder:
    """Stands in for an aiokafka client class: records how it was built, then refuses to connect."""

    built: list[dict[str, Any]]

    def __init__(self, *topics: str, **options: Any) -> None:
        self.built.append(options)

    async def start(self) -> None:
        raise ConnectionError("not connecting in a unit test")


async def test_every_raw_client_gets_the_security_settings(
    ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin client (topic creation, the broker limit check) and the dead-letter tool's clients."""
    built: list[dict[str, Any]] = []
    recorder = type("Recorder", (_Recorder,), {"built": built})
    for module, names in (
        (bus.runtime, ["AIOKafkaAdminClient"]),
        (bus.dlq, ["AIOKafkaAdminClient", "AIOKafkaConsumer", "AIOKafkaProducer"]),
    ):
        for name in names:
            monkeypatch.setattr(module, name, recorder)
    settings = _managed(ca_file)
    calls = [
        _bus(settings).ensure_topics(["t"]),
        _bus(settings).check_broker_limit(["t"]),
        DeadLetters(settings).topics(),
        DeadLetters(settings).read("t.dlq"),
        DeadLetters(settings).replay([]),
    ]
    for call in calls:
        with pytest.raises(ConnectionError):
            await call
    assert len(built) == len(calls)
    for options in built:
        assert options["bootstrap_servers"] == "kafka.example:9093"
        _assert_secured(options, "SCRAM-SHA-512")


def test_plaintext_stays_the_default() -> None:
    assert kafka_security(_settings()) is None
    assert kafka_client_kwargs(_settings()) == {"bootstrap_servers": "kafka.example:9093"}


def test_ssl_without_sasl_verifies_the_server_with_the_ca_file(ca_file: Path) -> None:
    options = kafka_client_kwargs(_settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(ca_file)))
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert options["ssl_context"].verify_mode.name == "CERT_REQUIRED"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
            },
            "needs KAFKA_SASL_PASSWORD",
        ),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": PASSWORD}, "does not use SASL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN"}, "does not use SASL"),
        ({"KAFKA_SSL_CAFILE": "/ca.pem"}, "does not use TLS"),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_MECHANISM": "PLAIN",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
                "KAFKA_SSL_CAFILE": "/ca.pem",
            },
            "does not use TLS",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": "/c.pem"}, "go together"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
    ],
)
def test_an_incoherent_combination_is_refused_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        _settings(**env)
    assert PASSWORD not in str(refused.value)


def test_an_unreadable_ca_file_is_refused_when_the_bus_is_built(tmp_path: Path) -> None:
    settings = _settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(tmp_path / "missing.pem"))
    with pytest.raises(KafkaSecurityError, match="KAFKA_SSL_"):
        _bus(settings)


def test_the_password_is_in_no_repr_and_no_log_line(
    ca_file: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        settings = _managed(ca_file)
        built = _bus(settings)
        security = kafka_security(settings)
        logging.getLogger("test").info("settings %s %r", settings, settings)
        structlog.get_logger("test").info("settings", settings=settings, dump=settings.model_dump())
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(security), repr(built)]
    shown += [caplog.text, repr(events), capsys.readouterr().err]
    assert all(PASSWORD not in text for text in shown)
    assert "switchboard" in repr(settings)  # the username is not a secret
