"""Files encrypted as a stream of authenticated segments, so neither writing nor reading holds
a whole file in memory, and a reader never releases a byte that has not been authenticated.

The layout follows the segmented AEAD of Tink's streaming AEAD (the STREAM construction):

    header:  b"ENCF" | version 1 | key id length (1) | key id | wrapped key length (2) |
             wrapped data key | nonce prefix (7)
    body:    segments of SEGMENT bytes of plaintext, each sealed with AES-256-GCM under the
             file's own data key; nonce = prefix | segment number (4) | last-segment flag (1)

Each segment's number and "last" flag sit in its nonce, so segments cannot be reordered,
dropped or the file truncated without failing authentication. The header's key id and wrapped
key are outside the segments' associated data: rotation rewrites the header and copies the
segments as they are.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import DecryptionFailed, MalformedEnvelope
from .keys import provider

MAGIC = b"ENCF"
VERSION = 1
SEGMENT = 64 * 1024
TAG = 16
AAD = MAGIC + bytes([VERSION])


def _nonce(prefix: bytes, number: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", number, int(last))


def _header(key_id: str, wrapped: bytes, prefix: bytes) -> bytes:
    kid = key_id.encode("ascii")
    return AAD + bytes([len(kid)]) + kid + struct.pack(">H", len(wrapped)) + wrapped + prefix


def _read_exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise MalformedEnvelope("the encrypted file's header is truncated")
    return data


def read_header(source: BinaryIO) -> tuple[str, bytes, bytes]:
    """(key id, wrapped data key, nonce prefix); the source is left at the first segment."""
    if source.read(len(AAD)) != AAD:
        raise MalformedEnvelope("not an encrypted file (or an unknown version)")
    key_id = _read_exact(source, _read_exact(source, 1)[0]).decode("ascii")
    (wrapped_size,) = struct.unpack(">H", _read_exact(source, 2))
    return key_id, _read_exact(source, wrapped_size), _read_exact(source, 7)


def _rebuffered(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    yield bytes(buffer)


def encrypt_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The encrypted file, header first, one sealed segment at a time."""
    data_key = AESGCM.generate_key(bit_length=256)
    aead = AESGCM(data_key)
    prefix = os.urandom(7)
    key_id, wrapped = provider().wrap(data_key)
    yield _header(key_id, wrapped, prefix)
    # Look one segment ahead: the last one is flagged (a full-size last segment included).
    segments = _rebuffered(chunks, SEGMENT)
    current = next(segments)
    number = 0
    for following in segments:
        if not following:
            break
        yield aead.encrypt(_nonce(prefix, number, False), current, AAD)
        current, number = following, number + 1
    yield aead.encrypt(_nonce(prefix, number, True), current, AAD)


class DecryptingReader(io.RawIOBase):
    """A read-only file object over an encrypted file: one segment in memory at a time."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        key_id, wrapped, self._prefix = read_header(source)
        self._aead = AESGCM(provider().unwrap(key_id, wrapped))
        self._number = 0
        self._buffer = b""
        self._offset = 0
        self._pending = source.read(SEGMENT + TAG)
        self._done = False

    def readable(self) -> bool:
        return True

    def _next_segment(self) -> bytes:
        sealed, self._pending = self._pending, self._source.read(SEGMENT + TAG)
        last = not self._pending
        try:
            plain = self._aead.decrypt(_nonce(self._prefix, self._number, last), sealed, AAD)
        except InvalidTag as exc:
            raise DecryptionFailed(
                f"segment {self._number} of the file does not authenticate"
            ) from exc
        self._number += 1
        self._done = last
        return plain

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while self._offset == len(self._buffer) and not self._done:
            self._buffer, self._offset = self._next_segment(), 0
        size = min(len(target), len(self._buffer) - self._offset)
        target[:size] = self._buffer[self._offset : self._offset + size]
        self._offset += size
        return size

    def close(self) -> None:
        self._source.close()
        super().close()


def rewrap(source: BinaryIO, target: BinaryIO) -> None:
    """Copy an encrypted file with its data key wrapped by the newest KEK; segments unchanged."""
    key_id, wrapped, prefix = read_header(source)
    keys = provider()
    new_id, new_wrapped = keys.wrap(keys.unwrap(key_id, wrapped))
    target.write(_header(new_id, new_wrapped, prefix))
    while chunk := source.read(SEGMENT + TAG):
        target.write(chunk)
