from __future__ import annotations

from celery import shared_task


@shared_task
def staff_disable_inactive() -> list[str]:
    """PCI DSS 8.2.6: staff accounts unused for STAFF_INACTIVE_DAYS are disabled, daily."""
    from .accounts import staff_disable_inactive as disable

    return disable()


@shared_task
def audit_checkpoint() -> int:
    """Hourly: verify the rows since the last checkpoint, sign the chain heads, export them.
    One process (a worker's child may not fork); a refusal raises, and shows as a failure."""
    from pathlib import Path

    from django.conf import settings

    from .checkpoints import checkpoint_create, checkpoints_export

    checkpoint, _ = checkpoint_create(workers=1)
    if settings.AUDIT_CHECKPOINT_EXPORT_DIR:
        list(checkpoints_export(Path(settings.AUDIT_CHECKPOINT_EXPORT_DIR)))
    return int(checkpoint.pk)


@shared_task
def audit_chain_verify() -> bool:
    """Daily from beat: verify every chain from the last good signed checkpoint (incremental;
    a refused checkpoint counts as a failure) and keep the result for /metrics and its alert."""
    from . import checkpoints
    from .models import ChainVerification
    from .verify import verification_record

    signed, refused = checkpoints.checkpoint_latest_good()
    report = checkpoints.verify_from(signed, None, 1)
    verification_record(report, source=ChainVerification.Source.TASK, refused=refused)
    return report.ok and not refused


@shared_task
def audit_partitions_ensure() -> list[str]:
    """Daily from beat: the payment_audits partitions of this month and the next ones exist
    before a row needs them (PostgreSQL; nothing elsewhere). Returns the partitions created."""
    from .partitions import ensure_ahead, is_partitioned

    if not is_partitioned():
        return []
    result = ensure_ahead()
    if result.refused:
        raise RuntimeError("; ".join(result.refused))
    return result.created
