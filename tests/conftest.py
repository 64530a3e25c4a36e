"""Shared test settings: where the real shop payloads are, and no real network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Shared machines run at uneven speed: no per-example deadline and no "too slow" failures; what
# the property tests check is behaviour, not speed (speed is shown by bench/).
settings.register_profile(
    "hubmap",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("hubmap")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("HUBMAP_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAPPINGS = ROOT / "mappings"
CASES = Path(__file__).resolve().parent / "cases"


def shared_data(*parts: str) -> Path:
    """A file of the shared real-payload set; the test is skipped when the set is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set HUBMAP_SHARED_DATA to its folder)")
    return path


_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address, *args, **kwargs):  # type: ignore[no-untyped-def]
    host = address[0] if isinstance(address, tuple) else address
    if (
        isinstance(host, str)
        and host not in ("127.0.0.1", "localhost", "::1")
        and not host.startswith("/")
    ):
        raise RuntimeError(f"tests may not reach the network (tried {address!r})")
    return _real_connect(self, address, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


# ------------------------------------------------------------------------------- PostgreSQL
# The PostgreSQL tests use the server named by HUBMAP_TEST_POSTGRES (`.ci/run` starts one), or
# start a private one for the session (tests/postgres_server.py) when the server binaries are
# here; otherwise they are skipped with the reason.  Each test gets a database of its own.


@pytest.fixture(scope="session")
def postgres_server() -> object:
    from tests import postgres_server as server

    url = os.environ.get("HUBMAP_TEST_POSTGRES")
    if url:
        yield url
        return
    try:
        url, folder = server.start()
    except server.NoServer as error:
        pytest.skip(f"no PostgreSQL for this test: {error}")
    try:
        yield url
    finally:
        server.stop(folder)


_databases = iter(range(1, 10**9))


def _new_database(server: str) -> str:
    import psycopg

    name = f"hubmap_t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return f"{server.rsplit('/', 1)[0]}/{name}"


def _drop_database(server: str, url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_server: str) -> object:
    """The URL of an empty database, dropped after the test."""
    url = _new_database(postgres_server)
    yield url
    _drop_database(postgres_server, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def new_state(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """Makes an empty state for the test, in each backend in turn: a SQLite file in the test's
    folder (`name`), or a PostgreSQL database of its own (dropped after the test).  Suites that
    must hold for both backends take their states from it."""
    made: dict[str, str] = {}  # name -> database URL
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None

    def make(name: str = "state.db") -> Path | str:
        """The state called `name` (the same one for the same name)."""
        if server is None:
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            return path
        if name not in made:
            made[name] = _new_database(server)
        return made[name]

    yield make
    for url in made.values():
        _drop_database(server, url)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def make_state(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> object:
    """`make_state(backend)`: a new empty state in "sqlite" or "postgresql" at each call, for
    tests whose examples each need a fresh one (hypothesis); dropped at the session's end."""
    made: list[tuple[str, str]] = []

    def make(backend: str) -> Path | str:
        if backend == "sqlite":
            return tmp_path_factory.mktemp("state") / "state.db"
        server = request.getfixturevalue("postgres_server")
        made.append((server, _new_database(server)))
        return made[-1][1]

    yield make
    import psycopg

    for server, url in made:
        try:
            _drop_database(server, url)
        except psycopg.OperationalError:  # a server of the session's own, stopped first
            break
