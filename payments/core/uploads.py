"""Checks for files people upload (KYC documents, chargeback evidence): the type is read from
the content, never from the name; the size is bounded; the stored name is random."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.files.uploadedfile import UploadedFile
from django.db import models

from .errors import DomainError

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)


class UploadRejected(DomainError):
    pass


@dataclass(frozen=True)
class CheckedUpload:
    content_type: str
    sha256: str
    size: int
    display_name: str


def sniff_content_type(head: bytes) -> str | None:
    for magic, content_type in SIGNATURES:
        if head.startswith(magic):
            return content_type
    return None


def display_name(name: str) -> str:
    """The uploaded name for display only: its last path part, printable, 255 characters."""
    base = os.path.basename(name.replace("\\", "/"))
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip(" .")
    return cleaned[:255] or "upload"


def check_upload(upload: UploadedFile[Any], *, max_bytes: int = MAX_UPLOAD_BYTES) -> CheckedUpload:
    size = upload.size or 0
    if size <= 0:
        raise UploadRejected("The file is empty.")
    if size > max_bytes:
        raise UploadRejected(f"The file is {size:,} bytes; the limit is {max_bytes:,}.")
    upload.seek(0)
    content_type = sniff_content_type(upload.read(16))
    if content_type is None:
        raise UploadRejected(
            "Only PDF, PNG and JPEG files are accepted (checked from the content, not the name)."
        )
    digest = hashlib.sha256()
    upload.seek(0)
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return CheckedUpload(content_type, digest.hexdigest(), size, display_name(upload.name or ""))


StoredUpload = TypeVar("StoredUpload", bound=models.Model)


def store_checked_upload(
    record: StoredUpload, upload: UploadedFile[Any], checked: CheckedUpload
) -> StoredUpload:
    """Save a new upload row (KYC document, evidence file): its metadata from the check, its
    content under the random name the model's upload_to gives it."""
    for field, value in (
        ("original_name", checked.display_name),
        ("sha256", checked.sha256),
        ("size", checked.size),
        ("content_type", checked.content_type),
    ):
        setattr(record, field, value)
    record.file.save("upload", upload, save=False)  # type: ignore[attr-defined]  # every upload model has a file
    record.save()
    return record
