"""The SQL layer runs the same statements on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from hubmap import sql


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        target = str(tmp_path / "t.db")
    else:
        target = request.getfixturevalue("postgres_url")
    db = sql.connect(target)
    dialect = db.dialect
    db.script(
        dialect.ddl(
            "CREATE TABLE IF NOT EXISTS t (id {serial}, name TEXT UNIQUE, data {blob}, note TEXT)"
        )
    )
    yield db
    db.close()


def test_placeholders_upserts_and_returning_ids(database: sql.Database) -> None:
    first = database.insert_id(
        "INSERT INTO t (name, data) VALUES (?, ?) RETURNING id", ("a", b"\x00\xff")
    )
    second = database.insert_id(
        "INSERT INTO t (name, data) VALUES (?, ?) RETURNING id", ("b", b"x")
    )
    assert second > first
    database.execute(
        "INSERT INTO t (name, note) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
        "SET note=excluded.note",
        ("a", "100% sure"),
    )
    rows = database.execute(
        "SELECT name, data, note FROM t WHERE note LIKE '%sure' OR name=? ORDER BY name", ("b",)
    ).fetchall()
    assert [(r[0], bytes(r[1]), r[2]) for r in rows] == [
        ("a", b"\x00\xff", "100% sure"),
        ("b", b"x", None),
    ]


def test_executemany_and_nested_transactions(database: sql.Database) -> None:
    with database.transaction():
        database.executemany("INSERT INTO t (name) VALUES (?)", [("x",), ("y",)])
        with database.transaction():  # joins the outer one
            database.execute("INSERT INTO t (name) VALUES (?)", ("z",))
    assert database.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3


def test_a_failed_transaction_rolls_back_everything(database: sql.Database) -> None:
    with pytest.raises(sql.IntegrityError), database.transaction():
        database.execute("INSERT INTO t (name) VALUES (?)", ("x",))
        database.execute("INSERT INTO t (name) VALUES (?)", ("x",))  # not unique
    assert database.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 0
    assert not database.in_transaction
    database.execute("INSERT INTO t (name) VALUES (?)", ("x",))  # usable afterwards


def test_two_connections_see_committed_rows_only(database: sql.Database) -> None:
    other = sql.connect(database.target)
    try:
        seen: list[int] = []
        with database.transaction():
            database.execute("INSERT INTO t (name) VALUES (?)", ("x",))
            reader = threading.Thread(
                target=lambda: seen.append(other.execute("SELECT COUNT(*) FROM t").fetchone()[0])
            )
            reader.start()
            reader.join()
        assert seen == [0]
        assert other.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 1
    finally:
        other.close()


def test_urls_are_shown_without_their_password() -> None:
    assert sql.shown("postgresql://me:secret@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert sql.shown("state.db") == "state.db"
    assert sql.is_url("postgres://h/x") and not sql.is_url("postgresql.db")
