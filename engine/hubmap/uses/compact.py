"""Values a run holds in memory between two of its steps (HubSpot's answers to early reads, the
prepared writes waiting to be sent), held compactly.

A prepared write as Python objects - two dicts of texts and a fence - takes some 2.4 KB, a
HubSpot record some 6 KB; tens of thousands of them wait at once.  Held as their JSON text,
deflated against a dictionary made of the first values held (they repeat the same property
names, record fields and fence texts), each takes a few hundred bytes.

Only JSON's own values go in - str, int, float, bool, None, lists and dicts with text keys, as
HubSpot's answers and wire values are - and come back equal, dict order included.  A tuple
would come back as a list and a Decimal is refused, so such values are not held this way.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from hubmap import deflate

_TEXT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
_READ = json.JSONDecoder()
_UTF8 = "surrogatepass"  # a lone surrogate in a text survives the round trip


class Compact:
    """Packs JSON values to bytes and back; one instance per kind of value (its dictionary is
    made of that kind's first values).  Safe to use from several threads."""

    SAMPLE_BYTES = 8192  # the dictionary: the end of the first values' texts
    _PLAIN, _DICTIONARY = b"\x00", b"\x01"  # first byte: packed without or with the dictionary

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sample: list[bytes] = []
        self._sampled = 0
        self._dictionary: bytes | None = None
        self._plain = deflate.compressor()
        self._prepared: Any = None  # the compressor with the dictionary taken in

    def pack(self, value: Any) -> bytes:
        data = _TEXT.encode(value).encode("utf-8", _UTF8)
        prepared = self._prepared
        if prepared is None:
            prepared = self._sampling(data)
        mark = self._PLAIN if prepared is None else self._DICTIONARY
        one = (self._plain if prepared is None else prepared).copy()
        return mark + one.compress(data) + one.flush()

    def unpack(self, blob: bytes) -> Any:
        if blob[:1] == self._DICTIONARY:
            reader = deflate.decompressor(self._dictionary or b"")
        else:
            reader = deflate.decompressor()
        data = reader.decompress(memoryview(blob)[1:]) + reader.flush()
        return _READ.decode(data.decode("utf-8", _UTF8))

    def _sampling(self, data: bytes) -> Any:
        """Take `data` into the sample; once the sample is large enough, the prepared
        compressor with its dictionary (None until then)."""
        with self._lock:
            if self._prepared is None:
                self._sample.append(data)
                self._sampled += len(data)
                if self._sampled >= self.SAMPLE_BYTES:
                    # zlib prefers the texts at the dictionary's end
                    self._dictionary = b"".join(self._sample)[-self.SAMPLE_BYTES :]
                    self._sample = []
                    self._prepared = deflate.compressor(self._dictionary)
            return self._prepared


class Held:
    """Values held by key, packed, up to `max_bytes` of memory: a value past that is not held
    (`put` says so), and its owner finds it elsewhere when it needs it.  Values are not None.
    Not locked: its owner holds a lock around it."""

    # what one value costs besides its packed bytes: the bytes object, its key (an email) and
    # the dict's slot, about
    ENTRY_BYTES = 160

    def __init__(self, compact: Compact, max_bytes: int):
        self.compact = compact
        self.max_bytes = max_bytes
        self.bytes = 0
        self._packed: dict[str, bytes] = {}

    def __len__(self) -> int:
        return len(self._packed)

    def __contains__(self, key: object) -> bool:
        return key in self._packed

    def full(self) -> bool:
        return self.bytes >= self.max_bytes

    def put(self, key: str, packed: bytes) -> bool:
        """Hold a value `compact.pack` made, if it fits; whether it is held."""
        if self.bytes + len(packed) + self.ENTRY_BYTES > self.max_bytes:
            return False
        self.discard(key)
        self._packed[key] = packed
        self.bytes += len(packed) + self.ENTRY_BYTES
        return True

    def pop(self, key: str) -> Any:
        """The value held for `key`, no longer held; None when none is."""
        packed = self._packed.pop(key, None)
        if packed is None:
            return None
        self.bytes -= len(packed) + self.ENTRY_BYTES
        return self.compact.unpack(packed)

    def discard(self, key: str) -> None:
        packed = self._packed.pop(key, None)
        if packed is not None:
            self.bytes -= len(packed) + self.ENTRY_BYTES

    def clear(self) -> None:
        self._packed.clear()
        self.bytes = 0
