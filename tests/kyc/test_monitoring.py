"""Ongoing monitoring: every active merchant re-screened; a new hit goes to review on the
merchant, a hit seen before reopens nothing."""

from __future__ import annotations

import io

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command

from kyc import services, tasks
from kyc.models import CaseNote, KycCase, ScreeningResult
from kyc.screening import names_to_screen
from payments.models import Merchant
from tests.kyc.factories import KycCaseFactory
from tests.payments.factories import MerchantFactory

pytestmark = pytest.mark.django_db


def _rescreen() -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("rescreen_merchants", "--batch-size", "2", stdout=out, stderr=err)
    return out.getvalue() + err.getvalue()


def _state() -> tuple[list[tuple[int, str, str]], int, int]:
    return (
        sorted(ScreeningResult.objects.values_list("case_id", "screened_name", "disposition")),
        KycCase.objects.count(),
        CaseNote.objects.count(),
    )


def test_screening_names_are_the_legal_trading_and_contact_names_once_each() -> None:
    merchant = MerchantFactory(
        legal_name="Acme Ltd", trading_name="Acme Ltd", contact_name=" Jane Roe "
    )
    assert names_to_screen(merchant) == ["Acme Ltd", "Jane Roe"]


def test_a_new_hit_on_an_active_merchant_opens_a_case_for_review() -> None:
    clean = MerchantFactory(legal_name="Harmless Bakery Ltd", trading_name="Harmless Bakery")
    merchant = MerchantFactory(
        legal_name="Blue Harbour Ltd", trading_name="Blue Harbour", contact_name="Victor Bout"
    )
    output = _rescreen()
    assert "2/2 merchants" in output  # progress
    assert "1 cases opened for review" in output
    case = KycCase.objects.get(merchant=merchant)
    assert case.status == "submitted" and case.assignee is None  # in the queue
    assert case.screening_hit and case.risk_level == "high" and case.due_at is not None
    (hit,) = case.screening_results.all()
    assert (hit.screened_name, hit.matched_name, hit.disposition) == (
        "Victor Bout",
        "Victor But",
        "pending",
    )
    assert "Ongoing screening found Victor Bout ~ Victor But" in case.notes.get().text
    assert not KycCase.objects.filter(merchant=clean).exists()
    # Audited, naming the command.
    (created,) = LogEntry.objects.get_for_object(hit)
    assert created.additional_data == {"source": "command", "detail": "rescreen_merchants"}
    assert LogEntry.objects.get_for_object(case).filter(action=LogEntry.Action.CREATE).exists()


def test_an_unchanged_hit_reopens_nothing(analyst) -> None:
    merchant = MerchantFactory(legal_name="Nordwind Shipping GmbH", trading_name="")
    _rescreen()
    before = _state()
    assert "1 hits, 0 new" in _rescreen()
    assert _state() == before
    # Judged a false positive, the case decided: still nothing reopens.
    case = KycCase.objects.get(merchant=merchant)
    services.kyc_case_take_next(actor=analyst)
    services.kyc_case_start_review(case=case, actor=analyst)
    services.screening_result_dispose(
        result=case.screening_results.get(),
        disposition="false_positive",
        reason="a shipping firm of the same name in another country",
        actor=analyst,
    )
    before = _state()
    _rescreen()
    assert _state() == before


def test_a_new_hit_goes_on_the_merchants_open_case() -> None:
    merchant = MerchantFactory(legal_name="Omar Al Rashid Trading", contact_name="Omar Alrashid")
    open_case = KycCaseFactory(merchant=merchant, status="in_review")
    output = _rescreen()
    assert "0 cases opened for review, 1 open cases given new hits" in output
    assert list(KycCase.objects.filter(merchant=merchant)) == [open_case]
    assert open_case.screening_results.get().matched_name in ("Omar Alrashid", "Omar Al-Rashid")
    open_case.refresh_from_db()
    assert open_case.screening_hit and open_case.status == "in_review"


def test_a_decided_case_leaves_a_new_hit_to_a_new_case(officer) -> None:
    merchant = MerchantFactory(legal_name="Vltava Games s.r.o.", trading_name="")
    decided = KycCaseFactory(
        merchant=merchant,
        status="approved",
        decision="approve",
        decided_by=officer,
        decided_at="2026-01-01T00:00:00Z",
    )
    _rescreen()
    new = KycCase.objects.exclude(pk=decided.pk).get(merchant=merchant)
    assert new.kind == decided.kind and new.status == "submitted"
    assert not decided.screening_results.exists()


def test_only_active_merchants_are_rescreened() -> None:
    for status in (Merchant.Status.PENDING, Merchant.Status.SUSPENDED):
        MerchantFactory(legal_name="Viktor Bout", status=status)
    before = _state()
    assert "Re-screened 0 merchants" in _rescreen()
    assert _state() == before


def test_a_new_list_entry_is_a_new_hit_for_a_merchant_screened_before(tmp_path) -> None:
    merchant = MerchantFactory(legal_name="Kestrel Freight Ltd", trading_name="Kestrel Freight")
    _rescreen()
    assert not KycCase.objects.filter(merchant=merchant).exists()
    path = tmp_path / "list.csv"
    path.write_text(
        "name,aliases,category,list\nKestrel Freight LLC,,sanctions,TEST-CONSOLIDATED\n",
        encoding="utf-8",
    )
    call_command("load_screening_list", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    _rescreen()
    hits = ScreeningResult.objects.filter(case__merchant=merchant)
    assert {h.screened_name for h in hits} == {"Kestrel Freight Ltd", "Kestrel Freight"}
    assert all(h.source_id.startswith("csv-") for h in hits)


def test_the_nightly_task_rescreens(settings) -> None:
    assert settings.CELERY_BEAT_SCHEDULE["kyc-rescreen-nightly"]["task"] == (
        "kyc.tasks.merchants_rescreen"
    )
    MerchantFactory(legal_name="Global Shadow Trading Ltd")
    MerchantFactory(legal_name="Harmless Bakery Ltd", trading_name="Harmless Bakery")
    tally = tasks.merchants_rescreen.delay().get()
    assert tally == {
        "merchants": 2,
        "names": 4,
        "hits": 1,
        "new_hits": 1,
        "cases_opened": 1,
        "cases_reopened": 0,
    }
    (hit,) = ScreeningResult.objects.all()
    (created,) = LogEntry.objects.get_for_object(hit)
    assert created.additional_data["source"] == "task"
