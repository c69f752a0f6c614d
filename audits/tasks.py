from __future__ import annotations

from celery import shared_task


@shared_task
def staff_disable_inactive() -> list[str]:
    """PCI DSS 8.2.6: staff accounts unused for STAFF_INACTIVE_DAYS are disabled, daily."""
    from .accounts import staff_disable_inactive as disable

    return disable()
