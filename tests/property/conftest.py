"""What the property tests over HTTP share: one stand-in per module (each example resets it)."""

from __future__ import annotations

import pytest

from tests.acceptance import helpers


@pytest.fixture(scope="module")
def sandbox():  # type: ignore[no-untyped-def]
    running = helpers.start()
    yield running
    running.stop()
