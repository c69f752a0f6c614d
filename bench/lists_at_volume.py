"""Lists and searches at volume (issue 14): the console's changelists (payments, merchants, KYC
cases, audits), the /payments/ screen (first page and a deep keyset page), the KYC queue, the
audit search by each filter, and the API's cursor lists at several depths; p50, p95 and p99 of
warm requests, with /healthz measured in the same run as the floor.

Sizes are fractions of the issue's full size (1,000,000 payments, 100,000 KYC cases,
10,000,000 audit rows, 1,000 merchants), filled by generate_data's own code (kyc/demo/volume.py)
and measured in turn: `--sizes 0.01,1` measures at 10,000 payments, then tops the data up to
1,000,000 and measures again. On a throwaway test database, or with `--keep` on the database
DATABASE_URL names (generated once, topped up to each size, kept for the next run).

    make bench LISTS_BENCH_ARGS="--sizes 0.01,1"    # or: .venv/bin/python bench/lists_at_volume.py
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import random
import time
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any
from urllib.parse import urlencode

import measuring

# The API's per-token rate limit would answer 429 long before the bench is done.
measuring.setup_django(API_RATE_PER_TOKEN="1000000/min", API_RATE_PER_IP="1000000/min")  # noqa: S106

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from measuring import OUT, Figure, Timings, time_get  # noqa: E402

from audits.context import SYSTEM_USERNAME  # noqa: E402
from audits.models import PaymentAudit  # noqa: E402
from kyc.demo import volume  # noqa: E402
from kyc.models import KycCase  # noqa: E402
from payments.integration.tokens import api_token_create  # noqa: E402
from payments.models import Merchant, Payment  # noqa: E402

FULL = {"merchants": 1_000, "payments": 1_000_000, "kyc_cases": 100_000, "audit_rows": 10_000_000}
API_P99 = "<= 15"


_shown: dict[str, int] = {}


def _progress(what: str, done: int, total: int) -> None:
    """A line at every tenth of each stage (the command's bar redraws; a log file wants lines)."""
    tenth = done * 10 // max(total, 1)
    if tenth > _shown.get(what, -1) or done == total:
        _shown[what] = tenth
        print(f"    {what:<11} {done:>11,}/{total:,}", flush=True)


def top_up(size: float, rng: random.Random) -> dict[str, int]:
    """Generate what the database lacks of `size` x the full size; returns the counts."""
    want = {name: max(1, round(count * size)) for name, count in FULL.items()}
    have = {
        "merchants": Merchant.objects.count(),
        "payments": Payment.objects.count(),
        "kyc_cases": KycCase.objects.count(),
        "audit_rows": PaymentAudit.objects.count(),
    }
    missing = {name: max(want[name] - have[name], 0) for name in want}
    print(f"  generating {', '.join(f'{v:,} {k}' for k, v in missing.items() if v) or 'nothing'}")
    if missing["merchants"]:
        volume.merchants_generate(missing["merchants"], rng=rng, progress=_progress)
    merchants = list(Merchant.objects.values_list("pk", flat=True))
    batch = 10_000
    sample = []
    if missing["payments"]:
        sample = volume.payments_generate(
            missing["payments"], merchants=merchants, batch_size=batch, rng=rng, progress=_progress
        )
    if missing["kyc_cases"]:
        volume.cases_generate(
            missing["kyc_cases"], merchants=merchants, batch_size=batch, rng=rng, progress=_progress
        )
    if missing["audit_rows"]:
        sample = sample or list(Payment.objects.values_list("pk", flat=True)[:100_000])
        volume.audit_rows_generate(
            missing["audit_rows"], payments=sample, batch_size=batch, rng=rng, progress=_progress
        )
    measuring.analyze("payments_merchant", "payments_payment", "kyc_kyccase", "payment_audits")
    return {name: max(want[name], have[name]) for name in want}


def _cursor(position: object) -> str:
    """A DRF cursor at a position (ids below it, newest first), as a next link carries it."""
    return base64.b64encode(urlencode({"p": str(position)}).encode()).decode()


def lists(depth_ids: dict[str, list[Any]], object_id: str) -> list[tuple[str, str, bool]]:
    """(name, URL, through the API?) of every list measured."""
    day = (timezone.localdate() - datetime.timedelta(days=100)).isoformat()
    week_start = (timezone.localdate() - datetime.timedelta(days=107)).isoformat()
    screens = [
        ("console: payments", "/admin/payments/payment/", False),
        ("console: merchants", "/admin/payments/merchant/", False),
        ("console: KYC cases", "/admin/kyc/kyccase/", False),
        ("console: payment audits", "/admin/audits/paymentaudit/", False),
        ("/payments/ first page", "/payments/", False),
        ("/payments/ at 99% depth", f"/payments/?after={depth_ids['payments'][1]}", False),
        ("KYC queue, mine", "/kyc/", False),
        ("KYC queue, all cases", "/kyc/?tab=all", False),
        ("KYC queue, overdue", "/kyc/?tab=overdue", False),
        ("audit search, no filter", "/audits/", False),
        (
            "audit search by object",
            f"/audits/?object_type=payments.payment&object_id={object_id}",
            False,
        ),
        ("audit search by user", f"/audits/?actor={SYSTEM_USERNAME}", False),
        ("audit search, one day", f"/audits/?date_from={day}&date_to={day}", False),
        ("audit search, a week", f"/audits/?date_from={week_start}&date_to={day}", False),
        ("audit search by device", "/audits/?device_id=dev-42", False),
        ("audit search by IP", "/audits/?ip_address=10.0.7.1", False),
        ("audit search, action prefix", "/audits/?action=webhook.payment", False),
        ("audit search, action contains", "/audits/?action=payment.upd", False),
    ]
    audits = f"/api/v1/audit-trail/?object_type=payments.payment&object_id={object_id}&"
    api = []
    for name, path in (
        ("payments", "/api/v1/payments/?"),
        ("kyc_cases", "/api/v1/kyc-cases/?"),
        ("audit trail of a payment", audits),
    ):
        api.append((f"API {name}: first page", path.rstrip("?&"), True))
        for share, position in zip(("50%", "99%"), depth_ids[name], strict=True):
            api.append((f"API {name}: at {share} depth", f"{path}cursor={_cursor(position)}", True))
    return screens + api


def _depths(rows: Any, field: str = "pk") -> list[Any]:
    """The cursor positions 50% and 99% of the way down a newest-first list."""
    count = rows.count()
    ordered = rows.order_by(f"-{field}").values_list(field, flat=True)
    return [ordered[count // 2], ordered[max(count * 99 // 100 - 1, 0)]]


def measure_all(repeat: int) -> tuple[Timings, dict[str, Timings]]:
    client = measuring.staff_client(f"bench-{time.monotonic_ns()}")
    owner = User.objects.get(pk=client.session["_auth_user_id"])
    _, raw = api_token_create(
        owner=owner, name="bench", scopes=["payments:read", "kyc:read", "audit:read"]
    )
    api_headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    object_id = (
        PaymentAudit.objects.order_by("-created_at").values_list("object_id", flat=True).first()
    ) or "1"
    trail = PaymentAudit.objects.filter(object_type="payments.payment", object_id=object_id)
    depth_ids = {
        "payments": _depths(Payment.objects.all()),
        "kyc_cases": _depths(KycCase.objects.all()),
        # The audit trail's cursor is its first ordering field (AuditCursorPagination).
        "audit trail of a payment": _depths(trail, "created_at"),
    }
    floor = time_get(client, "/healthz", repeat=repeat)
    results = {}
    for name, url, through_api in lists(depth_ids, object_id):
        headers = api_headers if through_api else {}
        results[name] = time_get(client, url, repeat=repeat, **headers)
        t = results[name]
        print(
            f"  {name:<42} p50 {t.p50:6.1f}  p95 {t.p95:6.1f}  p99 {t.p99:6.1f} ms  "
            f"{t.queries:2d} queries, in the database p50 {t.db_p50:5.1f} p95 {t.db_p95:5.1f} ms",
            flush=True,
        )
    return floor, results


@contextlib.contextmanager
def database(keep: bool) -> Iterator[None]:
    if keep:
        from django.test.utils import setup_test_environment

        setup_test_environment()  # the test client's host allowed, as on a test database
        yield
    else:
        with measuring.throwaway_database():
            yield


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0.01,1", help="fractions of the full size, in turn")
    parser.add_argument("--repeat", type=int, default=30, help="requests per list and size")
    parser.add_argument("--keep", action="store_true", help="use DATABASE_URL's database")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    sizes = sorted(float(s) for s in args.sizes.split(","))
    rng = random.Random(args.seed)  # noqa: S311 (bench data, the same each run)
    measured: dict[str, dict] = {}
    # A run at other sizes (e.g. --keep at full size) keeps what an earlier run measured.
    previous = OUT / "lists_at_volume.json"
    if previous.exists():
        measured = json.loads(previous.read_text(encoding="utf-8"))["details"].get("sizes", {})
    figures: list[Figure] = []
    with database(args.keep):
        for size in sizes:
            print(f"Lists at {size:g} x the full size ({connection.settings_dict['NAME']}):")
            started = time.perf_counter()
            counts = top_up(size, rng)
            print(f"  filled in {time.perf_counter() - started:.0f} s: {counts}")
            floor, results = measure_all(args.repeat)
            load = measuring.load_average()
            measured[str(counts["payments"])] = {
                "counts": counts,
                "load_average": load,
                "floor": asdict(floor),
                "lists": {name: asdict(t) for name, t in results.items()},
            }
            print(f"  /healthz (floor) p50 {floor.p50:.1f} ms; load average {load}")
            label = f"{counts['payments']:,} payments"
            for name, t in results.items():
                api = name.startswith("API")
                figures.append(
                    Figure(f"{name}, {label}, p50", t.p50, "ms", floor.p50, "/healthz", "<= 50")
                )
                figures.append(
                    Figure(
                        f"{name}, {label}, {'p99' if api else 'p95'}",
                        t.p99 if api else t.p95,
                        "ms",
                        floor.p99 if api else floor.p95,
                        "/healthz",
                        API_P99 if api else "<= 100",
                    )
                )
    measuring.report("lists_at_volume", figures, details={"sizes": measured})


if __name__ == "__main__":
    main()
