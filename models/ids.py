"""Random ids (version 4 UUIDs, 128-bit hex) drawn from the OS's random source in blocks, and
time-ordered ones (version 7) for rows that are only ever appended.

`uuid.uuid4()` reads the random source once per id, a system call, and builds the UUID the long
way: about 3 µs, and a refresh makes three ids (its new token's, its audit event's, its access
token's `jti`). Here one read serves 256 ids. They are as random as `uuid4`'s: the same source,
the same bits (122 of them, and the version and variant `uuid4` sets). Random rather than
counted, so that an id tells nothing of what was issued between two of them. A process forked
from this one drops the block it inherited and reads one of its own before its first id, or it
would repeat its parent's (a hook run at the fork, rather than a `getpid` system call per id).
"""

from __future__ import annotations

import os
import time
import uuid

BLOCK = 4096
# uuid4's version and variant bits: cleared, then set, as uuid.UUID(version=4) does.
_VERSION_MASK = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4 = (4 << 76) | (0x8000 << 48)
# RFC 9562 §5.7: 48 bits of Unix milliseconds, the version, 12 random bits, the variant, 62
# random bits.
_RANDOM_74 = (0xFFF << 64) | ((1 << 62) - 1)
_VERSION_7 = (7 << 76) | (0x8000 << 48)


class SpelledUUID(uuid.UUID):
    """A UUID that keeps its text once spelled. `str()` of a UUID formats its 32 hex digits
    every time (0.6 µs), and a refresh spells each of its ids three or four times: in its
    statement, its audit event and its tokens. Equal to, and hashed like, the plain UUID."""

    __slots__ = ("_text",)
    _text: str

    def __str__(self) -> str:
        try:
            return self._text
        except AttributeError:
            text = uuid.UUID.__str__(self)
            object.__setattr__(self, "_text", text)  # a UUID is immutable to everyone else
            return text

    def __repr__(self) -> str:
        return f"UUID({str(self)!r})"

    def __reduce__(self) -> tuple[type[uuid.UUID], tuple[str]]:
        return uuid.UUID, (uuid.UUID.__str__(self),)


class RandomIds:
    def __init__(self) -> None:
        self._block = b""
        self._next = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._block, self._next = b"", 0

    def bytes16(self) -> bytes:
        start = self._next
        if start + 16 > len(self._block):
            self._block, start = os.urandom(BLOCK), 0
        self._next = start + 16
        return self._block[start : start + 16]

    def hex(self) -> str:
        """128 random bits as 32 hex digits."""
        return self.bytes16().hex()

    def uuid4(self) -> SpelledUUID:
        """A random (version 4) UUID."""
        return SpelledUUID(int=(int.from_bytes(self.bytes16()) & _VERSION_MASK) | _VERSION_4)

    def uuid7(self) -> uuid.UUID:
        """A time-ordered (version 7) UUID: its first 48 bits are the current Unix time in
        milliseconds, the other 74 that are not version or variant are random.

        For audit events: a random key puts every insert on a random page of the primary key's
        index, and once that index outgrows the page cache each insert reads a page and each
        commit writes one more (at a million events, an event's insert on SQLite cost 11 µs
        against 7 and its commit a third more). Ordered by time, inserts go to the index's
        last pages. The id tells when the event happened, which its `created_at` says anyway.
        """
        millis = time.time_ns() // 1_000_000
        random = int.from_bytes(self.bytes16()) & _RANDOM_74
        return uuid.UUID(int=(millis << 80) | random | _VERSION_7)


_ids = RandomIds()
random_hex = _ids.hex
random_uuid = _ids.uuid4
ordered_uuid = _ids.uuid7
