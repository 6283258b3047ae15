"""No secret in our logs: a real uvicorn server's access log, httpx's request lines and structlog
events carry a signed URL's `sig` (and the other secret query parameters) only as REDACTED."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from bus.logs import SECRET_QUERY_PARAMS, redact_query, redact_query_values

SECRET = "canary-5ec7e7-value"

# Runs in its own interpreter: configure_logging sets process-wide logging.
SCRIPT = textwrap.dedent(
    """
    import socket, threading, time
    import httpx, structlog, uvicorn
    from bus.logs import configure_logging

    configure_logging("logs-test")

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        structlog.get_logger("t").info("t.request", url=f"/x?{scope['query_string'].decode()}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    query = "&".join(f"{name}={SECRET}" for name in NAMES)
    response = httpx.get(
        f"http://127.0.0.1:{port}/api/v1/uploads/doc?a=1&{query}",
        headers={"X-API-Key": SECRET, "X-Switchboard-Tool-Token": SECRET},
    )
    assert response.status_code == 200
    server.should_exit = True
    """
)


def test_secret_query_parameters_never_reach_the_logs() -> None:
    script = f"SECRET = {SECRET!r}\nNAMES = {list(SECRET_QUERY_PARAMS)!r}\n{SCRIPT}"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    logs = result.stdout + result.stderr
    access = [line for line in logs.splitlines() if "uvicorn.access" in line]
    assert access and "/api/v1/uploads/doc?a=1&sig=REDACTED" in access[0]
    assert "HTTP Request: GET" in logs and "t.request" in logs  # httpx's and our own lines were written
    assert SECRET not in logs


def test_redact_query_keeps_everything_else() -> None:
    assert redact_query("GET /a?sig=s1&b=2;token=t#f") == "GET /a?sig=REDACTED&b=2;token=REDACTED#f"
    assert redact_query("/o?Consumer_Secret=cs_1&keyword=k&monkey=1") == (
        "/o?Consumer_Secret=REDACTED&keyword=k&monkey=1"
    )
    assert redact_query("no query here: sig=1") == "no query here: sig=1"


def test_a_stored_api_keys_secret_is_redacted_wherever_it_appears() -> None:
    key = "sb_live_0123456789abcdef_" + "Ab-_" * 10 + "xyz"
    assert redact_query(f"presented {key} twice: {key}.") == (
        "presented sb_live_0123456789abcdef_REDACTED twice: sb_live_0123456789abcdef_REDACTED."
    )
    assert redact_query(f"/a?api_key={key}&b=1") == "/a?api_key=REDACTED&b=1"
    assert redact_query("sb_live_ alone, sb_live_0123456789abcdef_short") == (
        "sb_live_ alone, sb_live_0123456789abcdef_short"
    )


PERSONAL = "jane.canary-7f3e@example.com"

# A store searched by the caller's e-mail, and database errors whose driver quotes the value, logged
# by structlog (`log.exception`) and by a stdlib logger (`exc_info`).
PERSONAL_SCRIPT = textwrap.dedent(
    """
    import logging
    import httpx, structlog
    from sqlalchemy.exc import DBAPIError
    from bus.logs import configure_logging

    configure_logging("logs-test")

    class DataError(Exception):  # as asyncpg's driver-side errors read
        pass

    DataError.__module__ = "asyncpg.exceptions"

    def handler(request):
        return httpx.Response(200, json=[])

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        client.get("https://store.example/wp-json/wc/v3/orders", params={"search": PERSONAL, "per_page": 10})

    def failing():
        try:
            raise DataError(f"invalid input for query argument $1: '{PERSONAL}' (expected int)")
        except DataError as cause:
            raise DBAPIError("INSERT INTO sessions (email) VALUES ($1)", {"email": PERSONAL}, cause) from cause

    for logger in (structlog.get_logger("t").exception, logging.getLogger("t.stdlib").exception):
        try:
            failing()
        except DBAPIError:
            logger("t.failed")
    """
)


def test_personal_data_in_query_values_and_database_errors_never_reaches_the_logs() -> None:
    script = f"PERSONAL = {PERSONAL!r}\n{PERSONAL_SCRIPT}"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    logs = result.stdout + result.stderr
    assert "/orders?search=REDACTED&per_page=REDACTED" in logs
    assert logs.count("sqlalchemy.exc.DBAPIError") == 2 and "INSERT INTO sessions" in logs
    assert PERSONAL not in logs


def test_redact_query_values_keeps_names_and_the_rest_of_the_line() -> None:
    line = 'HTTP Request: GET https://s.example/o?search=a%40b.c&per_page=10;x= "HTTP/1.1 200 OK"'
    assert redact_query_values(line) == (
        'HTTP Request: GET https://s.example/o?search=REDACTED&per_page=REDACTED;x=REDACTED "HTTP/1.1 200 OK"'
    )


def test_an_offset_commit_refused_after_a_rebalance_is_one_warning_line_not_a_critical_traceback() -> None:
    """What FastStream's acknowledgement middleware logs when a paused consumer wakes up after its
    partitions moved (seen in a trial after SIGSTOP/SIGCONT): CRITICAL plus two chained tracebacks."""
    script = textwrap.dedent(
        """
        import logging
        from aiokafka.errors import CommitFailedError, IllegalGenerationError
        from bus.logs import configure_logging

        configure_logging("logs-test")
        logger = logging.getLogger("faststream.access.kafka")
        try:
            try:
                raise IllegalGenerationError("telephony")
            except IllegalGenerationError as cause:
                raise CommitFailedError("Commit cannot be completed since the group has already rebalanced") from cause
        except CommitFailedError as er:
            logger.log(logging.CRITICAL, repr(er), exc_info=er)
        try:
            raise RuntimeError("something else")
        except RuntimeError as er:
            logger.log(logging.CRITICAL, repr(er), exc_info=er)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    rebalanced, other = lines
    assert rebalanced["level"] == "warning" and "exception" not in rebalanced, rebalanced
    assert rebalanced["event"].startswith("bus.offset_commit.rebalanced")
    # Any other failure keeps its level and its trace.
    assert other["level"] == "critical" and "RuntimeError" in json.dumps(other), other
