"""One trace id crosses gateway (HTTP) -> Kafka -> provisioning -> Kafka -> gateway, outbox hops included."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import gateway
import provisioning.bootstrap
from bus.migrate import upgrade
from bus.secrets import new_key
from devinfra.postgres import create_database, drop_database
from elevenlabs_sim.testing import run_in_thread
from gateway.app import create_app
from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.settings import Settings as GatewaySettings
from provisioning.settings import Settings as ProvisioningSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    return spans


@pytest.fixture(scope="module")
def own_database(postgres_server_url: str) -> Iterator[str]:
    name = f"sb_trace_{uuid.uuid4().hex[:8]}"
    url = create_database(postgres_server_url, name)
    yield url
    drop_database(postgres_server_url, name)


async def test_trace_id_crosses_gateway_kafka_and_provisioning(
    exporter: InMemorySpanExporter,
    own_database: str,
    kafka_bootstrap_servers: str,
    kafka_client_env: dict[str, str],
    topic_prefix: str,
) -> None:
    with run_in_thread() as sim_url:
        common = {
            **kafka_client_env,
            "DATABASE_URL": own_database,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": f"{topic_prefix}trace.",
            "ELEVENLABS_BASE_URL": sim_url,
            "ELEVENLABS_API_KEY": "sim-key",
            "SWITCHBOARD_SECRET_KEY": new_key(),
        }
        gw_settings = GatewaySettings.model_validate(common | {"SWITCHBOARD_API_KEYS": "k"})
        prov_settings = ProvisioningSettings.model_validate(common)
        await asyncio.to_thread(upgrade, Path(gateway.__file__).parent / "migrations", own_database)
        await asyncio.to_thread(provisioning.bootstrap.run_migrations, prov_settings)
        prov = provisioning.bootstrap.bootstrap(prov_settings)
        await prov.start()
        app = create_app(gateway_bootstrap(gw_settings))
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                    response = await client.post(
                        "/api/v1/agents", json={"name": "Traced"}, headers={"X-API-Key": "k"}, timeout=30
                    )
                assert response.status_code == 200, response.text
        finally:
            await prov.stop()

    deadline = time.monotonic() + 10
    while True:
        spans = exporter.get_finished_spans()
        http = [s for s in spans if s.kind == trace.SpanKind.SERVER and s.name == "POST /api/v1/agents"]
        consumed = [s for s in spans if s.kind == trace.SpanKind.CONSUMER]
        if http and consumed:
            trace_id = http[0].context.trace_id
            topics_in_trace = {
                str(s.attributes.get("messaging.destination_publish.name"))
                for s in consumed
                if s.context.trace_id == trace_id and s.attributes
            }
            commands = any(t.endswith("provisioning.commands") for t in topics_in_trace)
            events = any(t.endswith("provisioning.events") for t in topics_in_trace)
            if commands and events:
                break
        assert time.monotonic() < deadline, f"trace did not cross the bus: {[s.name for s in spans]}"
        await asyncio.sleep(0.05)
