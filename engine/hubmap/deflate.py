"""Raw deflate with a preset dictionary, as the state (`state.Packer`) and a run's held values
(`uses.compact`) store JSON texts: a compressor prepared once per dictionary, copied per value.

An 8 KiB window holds the whole dictionary; with a small window and hash table a copy of the
prepared compressor is cheap (a third of plain zlib.compress's time).  No zlib header: the
caller's own mark says which dictionary a value was packed with.
"""

from __future__ import annotations

import zlib
from typing import Any

LEVEL = 6
WINDOW_BITS, MEMORY_LEVEL = 13, 6


def compressor(dictionary: bytes | None = None) -> Any:
    """A compressor to `copy()` for each value (with `dictionary` taken in, if any)."""
    if dictionary is None:
        return zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEMORY_LEVEL)
    return zlib.compressobj(LEVEL, zlib.DEFLATED, -WINDOW_BITS, MEMORY_LEVEL, zdict=dictionary)


def decompressor(dictionary: bytes | None = None) -> Any:
    if dictionary is None:
        return zlib.decompressobj(-WINDOW_BITS)
    return zlib.decompressobj(-WINDOW_BITS, zdict=dictionary)
