"""The configured key provider, loaded once and reloaded when tests change the settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .providers import KeyProvider


@lru_cache(maxsize=1)
def provider() -> KeyProvider:
    cls = import_string(settings.KEY_PROVIDER)
    factory = getattr(cls, "from_settings", cls)
    instance: KeyProvider = factory()
    return instance


@receiver(setting_changed)
def _reload(setting: str, **kwargs: Any) -> None:
    if setting in ("KEY_PROVIDER", "FIELD_ENCRYPTION_KEYS"):
        provider.cache_clear()
