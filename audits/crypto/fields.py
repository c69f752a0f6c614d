"""Model fields whose column holds an envelope while Python code sees the plaintext.

Forms, the console, serializers and templates read and write plain strings. A value read from
the database keeps its envelope (`EncryptedStr.envelope`), so saving a row again rewrites the
same ciphertext, and the audit receivers record that envelope, never the plaintext. A column
may still hold plaintext written before encryption existed: it reads as is until the data
migration or `rotate_keys` encrypts it.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression

from . import envelope
from .errors import SubjectErased

ERASED = "(erased)"


class EncryptedStr(str):
    """A plaintext that remembers the envelope it was read from or written as."""

    envelope: str
    context: str

    def __new__(cls, plaintext: str, *, envelope: str, context: str) -> EncryptedStr:
        value = super().__new__(cls, plaintext)
        value.envelope = envelope
        value.context = context
        return value


class ErasedStr(EncryptedStr):
    """A value whose person was erased: shown as ERASED, stored as the envelope it was read
    from, so saving the row again changes nothing."""


class StoredEnvelope(str):
    """An envelope written to the column as is (data migration, rotation). A plain `str` that
    looks like an envelope is encrypted like any input, so a user cannot plant one."""


class EncryptedMixin:
    """Before a CharField or EmailField: validators and forms see the plaintext and its
    max_length; the column is text. A lookup by value (`filter(contact_email=...)`) compares
    ciphertexts and finds nothing: exact search goes through a BlindIndexField."""

    name: str
    attname: str
    model: type[models.Model]
    subject: str | None  # the attname holding the person's key id (audits.SubjectKey)

    def __init__(self, *args: Any, subject: str | None = None, **kwargs: Any) -> None:
        self.subject = subject
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()  # type: ignore[misc]
        if self.subject:
            kwargs["subject"] = self.subject
        return name, path, args, kwargs

    @property
    def context(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    def db_type(self, connection: BaseDatabaseWrapper) -> str | None:
        # An envelope is longer than the plaintext whose length the validators check.
        return connection.data_types["TextField"]

    def from_db_value(
        self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper
    ) -> str | None:
        if value is None or not envelope.is_envelope(value):
            return value  # None, blank, or plaintext not yet encrypted
        try:
            plaintext = envelope.decrypt(value, context=self.context)
        except SubjectErased:
            return ErasedStr(ERASED, envelope=value, context=self.context)
        return EncryptedStr(plaintext, envelope=value, context=self.context)

    def seal(self, value: str | None) -> str | None:
        """The text to store for `value`."""
        if value is None or value == "" or isinstance(value, StoredEnvelope):
            return value
        return self._seal_text(value)

    def _seal_text(self, value: str, subject: Any = None) -> str:
        if isinstance(value, EncryptedStr) and value.context == self.context:
            return value.envelope
        return envelope.encrypt(str(value), context=self.context, subject=subject)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        # The instance keeps the envelope it is saved with, for the audit receivers.
        value = getattr(model_instance, self.attname)
        if not isinstance(value, str) or not value or isinstance(value, StoredEnvelope):
            return value
        subject = getattr(model_instance, self.subject) if self.subject else None
        if self.subject and subject is None:
            raise ValueError(f"{self.context} is a person's data: set {self.subject} first")
        sealed = self._seal_text(value, subject)
        if getattr(value, "envelope", None) != sealed:
            value = EncryptedStr(str(value), envelope=sealed, context=self.context)
            setattr(model_instance, self.attname, value)
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)  # type: ignore[misc]
        return self.seal(value)


def envelope_of(field: models.Field[Any, Any], value: Any) -> Any:
    """What an audit row records for `value` of `field`: the envelope for an encrypted field."""
    if isinstance(field, EncryptedMixin) and isinstance(value, str) and value:
        if isinstance(value, EncryptedStr) and value.context == field.context:
            return value.envelope
        return "(encrypted)"  # a value not saved yet: never its plaintext
    return value


class EncryptedCharField(EncryptedMixin, models.CharField):  # type: ignore[type-arg]
    pass


class EncryptedEmailField(EncryptedMixin, models.EmailField):  # type: ignore[type-arg]
    pass


class EncryptedTextField(EncryptedMixin, models.TextField):  # type: ignore[type-arg]
    pass


class BlindIndexField(models.CharField):  # type: ignore[type-arg]
    """HMAC-SHA256 of another field's normalised plaintext, for exact search: filter with
    `<name>__in=blind_index_candidates(normalise(term))`. Computed on every save."""

    def __init__(self, *args: Any, source: str = "", lowercase: bool = False, **kwargs: Any):
        self.source = source
        self.lowercase = lowercase
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("editable", False)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        if self.lowercase:
            kwargs["lowercase"] = True
        for key, default in (("max_length", 64), ("editable", False), ("blank", True)):
            if kwargs.get(key, default) == default:
                kwargs.pop(key, None)
        return name, path, args, kwargs

    def normalise(self, value: str) -> str:
        value = value.strip()
        return value.lower() if self.lowercase else value

    def index_of(self, value: str | None) -> str:
        if not value or isinstance(value, ErasedStr):
            return ""  # an erased person cannot be found any more
        return envelope.blind_index(self.normalise(value))

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = self.index_of(getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value
