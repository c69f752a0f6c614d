"""The fast paths of verify_audit_chain (issue 14, point 4) check what the slow ones did: the
content is serialised byte for byte as the writer always has (the hashes of stored rows cannot
change), and a chain read in many pages still catches a forged, deleted or reordered row."""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import uuid
from typing import Any

import pytest
from django.db import connection, transaction

from audits import chain, context, verify
from audits.models import PaymentAudit
from tests.audits.helpers import with_triggers_lifted

pytestmark = pytest.mark.django_db

# Strings JSON escapes in every way it can: quotes, backslashes, control characters, DEL,
# non-ASCII in and beyond the basic plane, a line separator.
AWKWARD = [
    "",
    "plain",
    'a "quote" \\ here',
    "tab\tline\nfeed\r",
    "\x01\x1f\x7f",
    "é",
    "😀",
    "\u2028",
]


def _value(rng: random.Random, depth: int = 0) -> Any:
    makers = [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.randrange(-(10**20), 10**20),
        lambda: rng.random() * 10 ** rng.randrange(-20, 20),
        lambda: rng.choice(AWKWARD) + rng.choice(AWKWARD),
        lambda: [_value(rng, depth + 1) for _ in range(rng.randrange(3))],
        lambda: {f"{rng.choice(AWKWARD)}{n}": _value(rng, depth + 1) for n in range(4)},
    ]
    return makers[rng.randrange(len(makers) if depth < 3 else 5)]()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def test_the_content_hashed_is_the_canonical_json_of_the_content_dict_as_always() -> None:
    rng = random.Random(14)  # fixed: the same cases on every run
    for _ in range(2000):
        row_id, at = (
            uuid.UUID(int=rng.getrandbits(128)),
            datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        )
        columns = {
            "id": row_id,
            "user_id": rng.choice([None, 1, 2**70, True, 1.5]),
            "action_type": rng.choice(AWKWARD),
            "object_type": rng.choice(AWKWARD),
            "object_id": rng.choice([*AWKWARD, 42]),
            "before_state": _value(rng),
            "after_state": _value(rng),
            "ip_address": rng.choice(["127.0.0.1", "::1", None]),
            "device_id": rng.choice([None, *AWKWARD]),
            "request_id": rng.choice(AWKWARD),
            "created_at": at + datetime.timedelta(microseconds=rng.randrange(10**12)),
        }
        # The definition the stored hashes were made with.
        written = {
            **columns,
            "id": str(row_id),
            "created_at": columns["created_at"].isoformat(timespec="microseconds"),
        }
        expected = hashlib.sha256(_dumps(written).encode()).hexdigest()
        assert chain.content_digest_of(*columns.values()) == expected
        # A JSON column read back as text (PostgreSQL's jsonb spacing, non-ASCII unescaped).
        for state in ("before_state", "after_state"):
            text = json.dumps(columns[state], ensure_ascii=False, separators=(", ", ": "))
            assert chain.canonical_json_of_text(text) == _dumps(columns[state])
    assert chain.canonical_json_of_text(None) == "null"
    with pytest.raises(json.JSONDecodeError):
        chain.canonical_json_of_text('{"a": 1} trailing')


def _append(states: list[Any]) -> list[PaymentAudit]:
    user_id = context.ensure_system_user().pk
    rows = []
    with transaction.atomic():
        for n, state in enumerate(states):
            row = PaymentAudit(
                id=uuid.uuid4(),
                user_id=user_id,
                action_type="task.payment.update",
                object_type="payments.payment",
                object_id="one-object",  # one object, one chain
                before_state=None if n == 0 else states[n - 1],
                after_state=state,
                ip_address="127.0.0.1",
                device_id="dévice" if n % 2 else None,
                request_id=f"req-{n}",
                created_at=datetime.datetime.now(datetime.UTC),
            )
            rows.append(chain.append(row))
    return rows


def _pk(row: PaymentAudit) -> str:
    return row.id.hex if connection.vendor == "sqlite" else str(row.id)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "BATCH", 2)  # a chain of a few rows spans several pages


@pytest.fixture
def awkward_chain() -> list[PaymentAudit]:
    """Rows written by the real append, with states the database stores in its own form
    (jsonb reorders keys, spaces them and keeps non-ASCII as it is)."""
    states: list[Any] = [
        {"status": "authorized", "amount": 1250, "currency": "EUR"},
        {"note": "Zoë paid ½ — “quoted” 😀", "nested": {"b": [1, 2.5, None, True], "a": {}}},
        {"esc": 'back\\slash "q" \t\n\x7f', "big": 2**62, "neg": -0.125, "list": []},
        {"zz": 1, "a": 2, "ab": 3, "b": 4, "Ä": 5, "é": {"x": "y"}},
        {"small": 1e-7, "frac": 0.1, "empty": ""},
        [1, "two", {"three": 3}],
        None,
    ]
    return _append(states)


def test_a_chain_over_many_pages_with_awkward_states_verifies(small_pages, awkward_chain) -> None:
    report = verify.verify_database(workers=1)
    assert report.ok, report.problems
    assert report.rows_checked >= len(awkward_chain)
    last = awkward_chain[-1]
    assert report.heads[last.chain] == (last.seq, last.row_hash)


def test_a_forged_row_on_a_later_page_is_caught(small_pages, awkward_chain) -> None:
    victim = awkward_chain[4]
    with_triggers_lifted(
        "UPDATE payment_audits SET request_id = %s WHERE id = %s", ["forged", _pk(victim)]
    )
    report = verify.verify_database(workers=1)
    assert [(p.seq, p.message) for p in report.problems] == [
        (victim.seq, "content does not match its hash (altered)")
    ]


def test_a_row_deleted_at_a_page_boundary_is_caught(small_pages, awkward_chain) -> None:
    victim = awkward_chain[2]  # the first row of the second page
    with_triggers_lifted("DELETE FROM payment_audits WHERE id = %s", [_pk(victim)])
    report = verify.verify_database(workers=1)
    assert [(p.seq, p.message) for p in report.problems] == [
        (victim.seq, f"missing; next row present is seq {victim.seq + 1}")
    ]


def test_two_rows_swapped_are_caught(small_pages, awkward_chain) -> None:
    first, second = awkward_chain[3], awkward_chain[4]
    for row_id, seq in ((first, 10**9), (second, first.seq), (first, second.seq)):
        with_triggers_lifted("UPDATE payment_audits SET seq = %s WHERE id = %s", [seq, _pk(row_id)])
    report = verify.verify_database(workers=1)
    assert [(p.seq, p.message) for p in report.problems] == [
        (first.seq, "does not link to the previous row")
    ]


def test_rows_deleted_over_several_pages_name_the_next_row_present(
    small_pages, awkward_chain
) -> None:
    first = awkward_chain[1]
    for victim in awkward_chain[1:5]:
        with_triggers_lifted("DELETE FROM payment_audits WHERE id = %s", [_pk(victim)])
    report = verify.verify_database(workers=1)
    assert [(p.seq, p.message) for p in report.problems] == [
        (first.seq, f"missing; next row present is seq {awkward_chain[5].seq}")
    ]


def test_a_cut_tail_shows_against_the_stored_head(small_pages, awkward_chain) -> None:
    for victim in awkward_chain[-3:]:
        with_triggers_lifted("DELETE FROM payment_audits WHERE id = %s", [_pk(victim)])
    kept, head = awkward_chain[-4], awkward_chain[-1]
    report = verify.verify_database(workers=1)
    assert [(p.seq, p.message) for p in report.problems] == [
        (kept.seq, f"the stored chain head says seq {head.seq}; rows end at seq {kept.seq}")
    ]
