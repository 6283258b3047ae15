"""`python -m bus.secrets rotate` on a real PostgreSQL: every `*_encrypted` column re-encrypted with
the current key and bound to its row; idempotent, resumable, and safe for rows it cannot read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import BigInteger, Column, MetaData, Table, Text, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bus.db import make_engine
from bus.secrets import Keyring, SecretKeySettings, Undecryptable, main, new_key, rotate, row_context

pytestmark = pytest.mark.integration

OLD, NEW = new_key(), new_key()


@dataclass
class Db:
    engine: AsyncEngine
    schema: str
    url: str
    tables: dict[str, Table]

    def context(self, table: str, key: object, column: str) -> str:
        return row_context(f"{self.schema}.{table}", [str(key)], column)

    async def values(self, table: str, column: str) -> dict[str, str | None]:
        t = self.tables[table]
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(t.c.id, t.c[column]).order_by(t.c.id))
            return {str(key): value for key, value in rows.all()}

    async def set(self, table: str, column: str, key: object, value: str | None) -> None:
        t = self.tables[table]
        async with self.engine.begin() as connection:
            await connection.execute(update(t).where(t.c.id == key).values({column: value}))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Db]:
    """A schema of this test's own: a text-keyed table and an integer-keyed one, as the services have."""
    schema = f"rotation_{uuid.uuid4().hex[:8]}"
    metadata = MetaData(schema=schema)
    tables = {
        "conversations": Table(
            "conversations",
            metadata,
            Column("id", Text, primary_key=True),
            Column("credentials_encrypted", Text),
            Column("note", Text),
        ),
        "registrations": Table(
            "registrations",
            metadata,
            Column("id", BigInteger, primary_key=True, autoincrement=True),
            Column("secret_encrypted", Text, nullable=False),
        ),
    }
    engine = make_engine(database_url, pool_size=2)
    async with engine.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await connection.run_sync(metadata.create_all)
    try:
        yield Db(engine, schema, database_url, tables)
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


async def _fill(db: Db, count: int) -> dict[str, str]:
    """`count` conversations with secrets in every state rotate meets: a Fernet token of the old
    code, an `sb2` one under the old key, one already current, and none; plus one registration."""
    old = Keyring(OLD)
    clear: dict[str, str] = {}
    async with db.engine.begin() as connection:
        for i in range(count):
            key = f"conv_{i:03d}"
            clear[key] = f"store-secret-{i}"
            context = db.context("conversations", key, "credentials_encrypted")
            value: str | None = [
                Fernet(OLD.encode()).encrypt(clear[key].encode()).decode(),
                old.encrypt(clear[key], context=context),
                Keyring(NEW).encrypt(clear[key], context=context),
                None,
            ][i % 4]
            if value is None:
                del clear[key]
            await connection.execute(
                insert(db.tables["conversations"]).values(
                    id=key, credentials_encrypted=value, note=f"note {i}"
                )
            )
        await connection.execute(
            insert(db.tables["registrations"]).values(
                secret_encrypted=Fernet(OLD.encode()).encrypt(b"wsec_registered").decode()
            )
        )
    return clear


async def test_rotate_re_encrypts_every_secret_with_the_first_key_bound_to_its_row(db: Db) -> None:
    clear = await _fill(db, 10)
    keyring = Keyring(NEW, [OLD])

    reports = await rotate(db.engine, keyring, batch_size=3, schemas=[db.schema])

    summary = {(r.table, r.column): (r.scanned, r.rotated, r.current, r.unreadable) for r in reports}
    assert summary == {
        (f"{db.schema}.conversations", "credentials_encrypted"): (8, 6, 2, []),
        (f"{db.schema}.registrations", "secret_encrypted"): (1, 1, 0, []),
    }
    new_only = Keyring(NEW)  # the old key can now be dropped
    stored = await db.values("conversations", "credentials_encrypted")
    for key, value in stored.items():
        if key not in clear:
            assert value is None
            continue
        assert value is not None and new_only.is_current(value)
        assert (
            new_only.decrypt(value, context=db.context("conversations", key, "credentials_encrypted"))
            == clear[key]
        )
    (registration,) = (await db.values("registrations", "secret_encrypted")).values()
    assert registration is not None
    assert (
        new_only.decrypt(registration, context=db.context("registrations", 1, "secret_encrypted"))
        == "wsec_registered"
    )
    # the other columns are untouched
    async with db.engine.connect() as connection:
        notes = (await connection.execute(select(db.tables["conversations"].c.note))).scalars().all()
    assert sorted(notes) == sorted(f"note {i}" for i in range(10))


async def test_after_rotation_a_secret_moved_to_another_row_does_not_decrypt(db: Db) -> None:
    """Fernet tokens of the old code are bound to no row; rotate binds them."""
    await _fill(db, 2)
    legacy = (await db.values("conversations", "credentials_encrypted"))["conv_000"]
    assert legacy is not None
    assert Keyring(OLD).decrypt(
        legacy, context=db.context("conversations", "conv_001", "credentials_encrypted")
    )

    await rotate(db.engine, Keyring(NEW, [OLD]), schemas=[db.schema])

    rotated = (await db.values("conversations", "credentials_encrypted"))["conv_000"]
    assert rotated is not None
    await db.set("conversations", "credentials_encrypted", "conv_001", rotated)  # moved by someone
    with pytest.raises(Undecryptable):
        Keyring(NEW).decrypt(
            rotated, context=db.context("conversations", "conv_001", "credentials_encrypted")
        )


async def test_rotate_is_idempotent_and_resumes_where_a_run_stopped(db: Db) -> None:
    await _fill(db, 12)
    keyring = Keyring(NEW, [OLD])
    # a first run that stopped half-way: the first rows were re-encrypted, the rest were not
    before = await db.values("conversations", "credentials_encrypted")
    done = {k for k in list(before)[:6] if before[k] is not None}
    for key in done:
        value = before[key]
        assert value is not None
        context = db.context("conversations", key, "credentials_encrypted")
        await db.set(
            "conversations",
            "credentials_encrypted",
            key,
            keyring.rebind(value, from_context=context, to_context=context),
        )
    halfway = await db.values("conversations", "credentials_encrypted")

    (conversations, _) = await rotate(db.engine, keyring, batch_size=4, schemas=[db.schema])

    after = await db.values("conversations", "credentials_encrypted")
    assert all(after[k] == halfway[k] for k in done)  # finished work is left alone
    assert conversations.rotated == sum(
        1 for k, v in before.items() if v and k not in done and not keyring.is_current(v)
    )
    again = await rotate(db.engine, keyring, batch_size=4, schemas=[db.schema])
    assert [r.rotated for r in again] == [0, 0]
    assert await db.values("conversations", "credentials_encrypted") == after


async def test_unreadable_rows_are_reported_by_key_and_left_as_they_are(
    db: Db, capsys: pytest.CaptureFixture[str]
) -> None:
    await _fill(db, 4)
    stranger = Keyring(new_key()).encrypt(
        "x", context=db.context("conversations", "conv_001", "credentials_encrypted")
    )
    await db.set("conversations", "credentials_encrypted", "conv_001", stranger)
    settings = SecretKeySettings.model_validate(
        {"DATABASE_URL": db.url, "SWITCHBOARD_SECRET_KEY": NEW, "SWITCHBOARD_PREVIOUS_SECRET_KEYS": OLD}
    )

    code = await main(["rotate", "--schema", db.schema], settings)

    out = capsys.readouterr().out
    assert code == 1
    assert f"{db.schema}.conversations.credentials_encrypted: 3 scanned, 1 re-encrypted" in out
    assert f"unreadable: {db.schema}.conversations primary key ['conv_001']" in out
    assert "store-secret" not in out and "wsec_registered" not in out
    assert (await db.values("conversations", "credentials_encrypted"))["conv_001"] == stranger
