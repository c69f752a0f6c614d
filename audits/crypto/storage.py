"""File storage that keeps every file encrypted on disk (audits.crypto.streams).

Saving streams the upload through the encryptor chunk by chunk (an upload Django spooled to a
temporary file is read, never moved into place); opening returns a reader that decrypts one
segment at a time, so a download streams too.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from django.core.files import File
from django.core.files.storage import FileSystemStorage

from .streams import DecryptingReader, encrypt_chunks


class _Encrypting(File):  # type: ignore[type-arg]
    """The upload as its ciphertext: no temporary_file_path, so the storage streams it."""

    def __init__(self, content: File) -> None:  # type: ignore[type-arg]
        super().__init__(None, name=content.name)
        self._content = content

    def chunks(self, chunk_size: int | None = None) -> Iterator[bytes]:
        return encrypt_chunks(self._content.chunks(chunk_size))


class EncryptedFileSystemStorage(FileSystemStorage):
    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        if name is None:
            name = content.name
        return super().save(name, _Encrypting(content), max_length=max_length)

    def _open(self, name: str, mode: str = "rb") -> File:  # type: ignore[type-arg]
        if mode != "rb":
            raise ValueError("Encrypted files are written once through save() and read as 'rb'.")
        source = open(self.path(name), "rb")  # noqa: SIM115  # the reader closes it
        try:
            reader = io.BufferedReader(DecryptingReader(source), buffer_size=64 * 1024)
        except Exception:
            source.close()
            raise
        return File(reader)
