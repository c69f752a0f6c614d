from __future__ import annotations

from celery import shared_task


@shared_task
def staff_disable_inactive() -> list[str]:
    """PCI DSS 8.2.6: staff accounts unused for STAFF_INACTIVE_DAYS are disabled, daily."""
    from .accounts import staff_disable_inactive as disable

    return disable()


@shared_task
def audit_chain_verify() -> bool:
    """Daily from beat: verify every chain and keep the result for /metrics (and its alert)."""
    from .models import ChainVerification
    from .verify import verification_record, verify_database

    report = verify_database()
    verification_record(report, source=ChainVerification.Source.TASK)
    return report.ok
