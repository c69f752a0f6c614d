"""Key status and rotation over every encrypted column and every encrypted file.

Rotation moves values and files to the newest KEK: a data key is unwrapped and wrapped again
(the ciphertext stays), a value of an older algorithm or still in the clear is encrypted anew.
It works in batches, each its own transaction, and picks only what is not yet on the newest
key, so an interrupted run resumes where it stopped; each row is written only if it still holds
what was read, so a concurrent edit is never overwritten. Audit rows are append-only and
hash-chained: they keep the key they were written with (key_status counts them), so a key
leaves FIELD_ENCRYPTION_KEYS only when no audit row needs it either.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import connection, models, transaction
from django.db.models.functions import Cast, Concat

from . import envelope, streams, subjects
from .fields import BlindIndexField, EncryptedMixin
from .keys import provider
from .legacy import encrypt_copy, is_encrypted_file, raw_values, replace_file
from .storage import EncryptedFileSystemStorage

PLAINTEXT = "(plaintext)"
MISSING = "(missing file)"
PERSON_KEY = "(a person's key)"  # its data key is wrapped by a SubjectKey, counted apart
ERASED_KEY = "(erased)"
SUBJECT_KEYS = "persons' keys (audits.subjectkey)"


@dataclass(frozen=True)
class Column:
    model: type[models.Model]
    field: Any  # an EncryptedMixin model field, or a FileField on the encrypted storage

    @property
    def label(self) -> str:
        return f"{self.model._meta.label_lower}.{self.field.name}"


def encrypted_columns() -> Iterator[Column]:
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedMixin):
                yield Column(model, field)


def encrypted_file_columns() -> Iterator[Column]:
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            storage = getattr(field, "storage", None)
            if isinstance(field, models.FileField) and isinstance(
                storage, EncryptedFileSystemStorage
            ):
                yield Column(model, field)


def _value_key(text: str) -> str:
    if not envelope.is_envelope(text):
        return PLAINTEXT
    key_id = envelope.key_id_of(text)
    return PERSON_KEY if subjects.is_subject_key_id(key_id) else key_id


def _file_key(name: str) -> str:
    path = default_storage.path(name)
    if not os.path.exists(path):
        return MISSING
    if not is_encrypted_file(path):
        return PLAINTEXT
    with open(path, "rb") as handle:
        return streams.read_header(handle)[0]


def _file_names(column: Column) -> models.QuerySet[Any]:
    name = column.field.attname
    return models.QuerySet(column.model).exclude(**{name: ""}).order_by("pk")


def key_status() -> dict[str, Counter[str]]:
    """For each encrypted column and file field: how many values use each key id."""
    status: dict[str, Counter[str]] = {}
    for column in encrypted_columns():
        rows = raw_values(column.model, column.field.attname).values_list("raw_text", flat=True)
        status[column.label] = Counter(_value_key(text) for text in rows.iterator(2000))
    for column in encrypted_file_columns():
        names = _file_names(column).values_list(column.field.attname, flat=True)
        status[column.label] = Counter(_file_key(name) for name in names.iterator(2000))
    status[SUBJECT_KEYS] = subject_key_status()
    status.update(audit_key_status())
    return status


def subject_key_status() -> Counter[str]:
    """Persons' keys by the KEK wrapping them; an erased one has no key left to rotate."""
    from audits.models import SubjectKey

    counts: Counter[str] = Counter()
    rows = SubjectKey.objects.values_list("kek_id", "erased_at")
    for kek_id, erased_at in rows.iterator(2000):
        counts[ERASED_KEY if erased_at else kek_id] += 1
    return counts


def audit_key_status() -> dict[str, Counter[str]]:
    """Audit rows holding an envelope of each configured key (rows, not values): a key may
    leave the configuration only when no row needs it."""
    from auditlog.models import LogEntry

    from audits.models import PaymentAudit

    text = models.TextField()
    trails: dict[str, models.QuerySet[Any]] = {
        "audit rows (payment_audits)": models.QuerySet(PaymentAudit).annotate(
            text=Concat(Cast("before_state", text), Cast("after_state", text), output_field=text)
        ),
        "audit rows (auditlog entries)": models.QuerySet(LogEntry).annotate(
            text=Cast("changes", text)
        ),
    }
    return {
        label: Counter(
            {
                key_id: count
                for key_id in provider().key_ids()
                if (count := rows.filter(text__contains=f":{key_id}:").count())
            }
        )
        for label, rows in trails.items()
    }


Progress = Callable[[str, int, int], None]


def _current_prefix() -> str:
    return f"{envelope.PREFIX}{envelope.ALGORITHM}:{provider().key_ids()[0]}:"


def _person_prefix() -> str:
    return f"{envelope.PREFIX}{envelope.ALGORITHM}:{subjects.PREFIX}"


def _column_name(field: Any) -> str:
    return str(field.column or field.attname)


def _update_sql(column: Column, index_columns: list[str]) -> str:
    """One row's new envelope (and blind indexes), written only if the row still holds what
    was read: a concurrent save keeps its own, newer, value."""
    quote = connection.ops.quote_name
    meta = column.model._meta
    table, pk = quote(meta.db_table), quote(_column_name(meta.pk))
    target = _column_name(column.field)
    assignments = ", ".join(f"{quote(name)} = %s" for name in [target, *index_columns])
    # Identifiers come from the model's metadata, values are parameters.
    return f"UPDATE {table} SET {assignments} WHERE {pk} = %s AND {quote(target)} = %s"  # noqa: S608  # nosec B608


def _rotate_values(column: Column, batch_size: int, progress: Progress) -> int:
    field = column.field
    # A person's values are current when their person's key is: rotate_subject_keys moves it.
    pending = (
        raw_values(column.model, field.attname)
        .exclude(raw_text__startswith=_current_prefix())
        .exclude(raw_text__startswith=_person_prefix())
    )
    total, done, after = pending.count(), 0, None
    indexes = [
        index
        for index in column.model._meta.concrete_fields
        if isinstance(index, BlindIndexField) and index.source == field.name
    ]
    sql = _update_sql(column, [_column_name(index) for index in indexes])
    while True:
        batch = pending.order_by("pk")
        if after is not None:
            batch = batch.filter(pk__gt=after)
        rows = list(batch.values_list("pk", "raw_text")[:batch_size])
        if not rows:
            return done
        updates = []
        for pk, text in rows:
            if envelope.is_envelope(text):
                new = envelope.rotate(text, context=field.context)
                plaintext = envelope.decrypt(new, context=field.context)
            else:
                plaintext, new = text, envelope.encrypt(text, context=field.context)
            updates.append([new, *(index.index_of(plaintext) for index in indexes), pk, text])
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, updates)
        done += len(rows)
        after = rows[-1][0]
        progress(column.label, min(done, total), total)


def _rotate_files(column: Column, batch_size: int, progress: Progress) -> int:
    current = provider().key_ids()[0]
    names = _file_names(column).values_list(column.field.attname, flat=True)
    pending = [name for name in names.iterator(2000) if _file_key(name) not in (current, MISSING)]
    for start in range(0, len(pending), batch_size):
        for name in pending[start : start + batch_size]:
            path = default_storage.path(name)
            replace_file(path, streams.rewrap if is_encrypted_file(path) else encrypt_copy)
        progress(column.label, min(start + batch_size, len(pending)), len(pending))
    return len(pending)


def rotate_subject_keys(batch_size: int, progress: Progress) -> int:
    """Re-wrap every live person's key under the newest KEK: their values need no change."""
    from audits.models import SubjectKey

    keys = provider()
    newest = keys.key_ids()[0]
    pending = SubjectKey.objects.filter(erased_at__isnull=True).exclude(kek_id=newest)
    total, done = pending.count(), 0
    while rows := list(
        pending.order_by("pk").values_list("pk", "kek_id", "wrapped_key")[:batch_size]
    ):
        with transaction.atomic():
            for pk, kek_id, wrapped in rows:
                new_kek, rewrapped = keys.wrap(keys.unwrap(kek_id, bytes(wrapped)))
                # Only if unchanged meanwhile: an erasure in between wins.
                SubjectKey.objects.filter(pk=pk, kek_id=kek_id, erased_at__isnull=True).update(
                    kek_id=new_kek, wrapped_key=rewrapped
                )
        done += len(rows)
        progress(SUBJECT_KEYS, min(done, total), total)
    return done


def rotate(*, batch_size: int, progress: Progress) -> dict[str, int]:
    """Move every value and file to the newest key; returns how many moved, per column."""
    moved: dict[str, int] = {SUBJECT_KEYS: rotate_subject_keys(batch_size, progress)}
    for column in encrypted_columns():
        moved[column.label] = _rotate_values(column, batch_size, progress)
    for column in encrypted_file_columns():
        moved[column.label] = _rotate_files(column, batch_size, progress)
    return moved
