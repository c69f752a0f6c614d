"""How many encrypted values and files use each key id, per field."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audits.crypto import rotation
from audits.crypto.keys import provider


class Command(BaseCommand):
    help = "Count encrypted values and files per key id, for each encrypted field."

    def handle(self, *args: Any, **options: Any) -> None:
        key_ids = list(provider().key_ids())
        self.stdout.write("keys (newest first): " + ", ".join(key_ids))
        for label, counts in rotation.key_status().items():
            figures = ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "empty"
            self.stdout.write(f"{label}: {figures}")
            unknown = (
                set(counts)
                - set(key_ids)
                - {rotation.PLAINTEXT, rotation.MISSING, rotation.PERSON_KEY, rotation.ERASED_KEY}
            )
            if unknown:
                self.stdout.write(self.style.ERROR(f"  unreadable, key not configured: {unknown}"))
