from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def screen_case(case_id: int) -> int:
    from .models import KycCase
    from .services import kyc_case_screen

    return len(kyc_case_screen(case=KycCase.objects.get(pk=case_id)))


@shared_task
def kyc_sla_sweep() -> dict[str, int]:
    from .services import kyc_sla_sweep as sweep

    return sweep()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def merchants_rescreen() -> dict[str, int]:
    """Nightly ongoing monitoring: every active merchant against the current list. Safe to
    run again: a hit already recorded opens nothing."""
    import dataclasses

    from .services import merchants_rescreen as rescreen

    return dataclasses.asdict(rescreen())
