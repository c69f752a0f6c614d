"""Encrypting what was stored before encryption existed (the data migrations use these)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.db import models
from django.db.models.functions import Cast

from . import envelope, streams
from .fields import BlindIndexField, EncryptedMixin, StoredEnvelope


def raw_values(model: type[models.Model], attname: str) -> models.QuerySet[Any]:
    """(pk, stored text) pairs, read past the field's decryption."""
    rows: models.QuerySet[Any] = (
        models.QuerySet(model)
        .annotate(raw_text=Cast(attname, output_field=models.TextField()))
        .exclude(raw_text__isnull=True)
        .exclude(raw_text="")
    )
    return rows


def index_updates(model: type[models.Model], source: str, plaintext: str) -> dict[str, str]:
    return {
        field.attname: field.index_of(plaintext)
        for field in model._meta.concrete_fields
        if isinstance(field, BlindIndexField) and field.source == source
    }


def seal_plaintext_values(model: type[models.Model]) -> int:
    """Encrypt every encrypted field's plaintext value of `model`; returns how many."""
    sealed = 0
    for field in model._meta.concrete_fields:
        if not isinstance(field, EncryptedMixin):
            continue
        rows = raw_values(model, field.attname).exclude(raw_text__startswith=envelope.PREFIX)
        for pk, text in rows.values_list("pk", "raw_text").iterator(chunk_size=1000):
            changes: dict[str, Any] = {
                field.attname: StoredEnvelope(envelope.encrypt(text, context=field.context)),
                **index_updates(model, field.name, text),
            }
            models.QuerySet(model).filter(pk=pk).update(**changes)
            sealed += 1
    return sealed


def is_encrypted_file(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(streams.AAD)) == streams.AAD


def replace_file(path: str, transform: Any) -> None:
    """Write `transform(source, target)` to a temporary file beside `path`, then swap it in."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".rotate-")
    try:
        with open(path, "rb") as source, os.fdopen(fd, "wb") as target:
            transform(source, target)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def encrypt_copy(source: Any, target: Any) -> None:
    for chunk in streams.encrypt_chunks(iter(lambda: source.read(streams.SEGMENT), b"")):
        target.write(chunk)


def seal_plaintext_files(model: type[models.Model], field_name: str) -> int:
    from django.core.files.storage import default_storage

    sealed = 0
    names: models.QuerySet[Any, str] = (
        models.QuerySet(model).exclude(**{field_name: ""}).values_list(field_name, flat=True)
    )
    for name in names.iterator(chunk_size=1000):
        path = default_storage.path(name)
        if os.path.exists(path) and not is_encrypted_file(path):
            replace_file(path, encrypt_copy)
            sealed += 1
    return sealed


def seal_under_subjects(
    model: type[models.Model], *, subject_attname: str, scope: str, email_field: str
) -> int:
    """Give each row without a person's key one, and seal its person's fields (those declared
    with `subject=subject_attname`) under it; returns how many rows. Audit rows written before
    keep the envelopes they were written with (README, "Erasure")."""
    from . import subjects

    fields = [
        f
        for f in model._meta.concrete_fields
        if isinstance(f, EncryptedMixin) and f.subject == subject_attname
    ]
    index = next(
        f
        for f in model._meta.concrete_fields
        if isinstance(f, BlindIndexField) and f.source == email_field
    )
    moved = 0
    rows: models.QuerySet[Any] = (
        models.QuerySet(model).filter(**{subject_attname: None}).order_by("pk")
    )
    for row in rows.iterator(chunk_size=500):
        values = {f.attname: getattr(row, f.attname) for f in fields}
        subject = subjects.create(
            scope=scope, email_index=index.index_of(values.get(email_field)), object_id=str(row.pk)
        )
        changes: dict[str, Any] = {subject_attname: subject}
        for f in fields:
            value = values[f.attname]
            if value:
                text = envelope.encrypt(str(value), context=f.context, subject=subject)
                changes[f.attname] = StoredEnvelope(text)
        models.QuerySet(model).filter(pk=row.pk).update(**changes)
        moved += 1
    return moved
