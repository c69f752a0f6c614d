from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from audits import context
from audits.chain import GENESIS_HASH, chain_for
from audits.models import AuditChainHead, PaymentAudit
from tests.audits.helpers import with_triggers_lifted
from tests.payments.factories import MerchantFactory, PaymentFactory

pytestmark = pytest.mark.django_db


def _verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_audit_chain", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def trail() -> list[PaymentAudit]:
    for n in range(6):
        payment = PaymentFactory(amount=1000 + n)
        with transaction.atomic():
            payment.description = f"edit {n}"
            payment.save()
    return list(PaymentAudit.objects.all())


def test_a_clean_chain_verifies_and_prints_its_heads(trail) -> None:
    output = _verify()
    assert "OK: every chain verifies." in output
    heads = re.findall(r"^\s+(\d+):(\d+):([0-9a-f]{64})$", output, re.M)
    stored = {(str(h.chain), str(h.seq), h.last_hash) for h in AuditChainHead.objects.all()}
    assert set(heads) == stored
    assert sum(int(seq) for _, seq, _ in heads) == len(trail)


def test_an_altered_row_is_named(trail) -> None:
    victim = PaymentAudit.objects.order_by("chain", "seq")[3]
    with_triggers_lifted(
        "UPDATE payment_audits SET after_state = %s WHERE id = %s",
        ['{"amount": 1}', victim.id.hex if _is_sqlite() else str(victim.id)],
    )
    with pytest.raises(CommandError, match=f"row {victim.id} content does not match"):
        _verify()


def test_a_deleted_middle_row_breaks_the_chain(trail) -> None:
    chain = PaymentAudit.objects.values_list("chain", flat=True).order_by("-seq").first()
    victim = PaymentAudit.objects.filter(chain=chain).order_by("seq").first()
    with_triggers_lifted(
        "DELETE FROM payment_audits WHERE id = %s",
        [victim.id.hex if _is_sqlite() else str(victim.id)],
    )
    with pytest.raises(CommandError, match=f"chain {chain} seq 1: missing"):
        _verify()


def test_a_cut_tail_shows_against_a_kept_head(trail) -> None:
    kept = re.findall(r"^\s+(\d+:\d+:[0-9a-f]{64})$", _verify(), re.M)
    last = PaymentAudit.objects.order_by("-seq").first()
    # The attacker removes the newest row and rewinds the head table to match.
    with_triggers_lifted(
        "DELETE FROM payment_audits WHERE id = %s", [last.id.hex if _is_sqlite() else str(last.id)]
    )
    previous = PaymentAudit.objects.filter(chain=last.chain, seq=last.seq - 1).first()
    with transaction.atomic():
        AuditChainHead.objects.filter(chain=last.chain).update(
            seq=last.seq - 1, last_hash=previous.row_hash if previous else GENESIS_HASH
        )
    assert "OK" in _verify()  # without a kept head, a clean cut is invisible
    expect = [arg for head in kept for arg in ("--expect", head)]
    with pytest.raises(CommandError, match=f"chain {last.chain} seq {last.seq}: kept head"):
        _verify(*expect)


def test_a_malformed_kept_head_is_a_clear_error(trail) -> None:
    with pytest.raises(CommandError, match="is not CHAIN:SEQ:HASH"):
        _verify("--expect", "nonsense")


def test_one_object_stays_in_one_chain() -> None:
    merchant = MerchantFactory()
    with context.bind(source="web"), transaction.atomic():
        merchant.contact_name = "New"
        merchant.save()
    chains = set(
        PaymentAudit.objects.filter(object_id=str(merchant.pk)).values_list("chain", flat=True)
    )
    assert chains == {chain_for("payments.merchant", str(merchant.pk))}


def _is_sqlite() -> bool:
    from django.db import connection

    return connection.vendor == "sqlite"
