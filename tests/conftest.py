"""Shared test settings: where the real shop payloads are, and no real network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Shared machines run at uneven speed: no per-example deadline and no "too slow" failures; what
# the property tests check is behaviour, not speed (speed is shown by bench/).
settings.register_profile("hubmap", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
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
    if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and \
            not host.startswith("/"):
        raise RuntimeError(f"tests may not reach the network (tried {address!r})")
    return _real_connect(self, address, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)
