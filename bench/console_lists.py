"""How the staff lists behave at volume: the payments changelist in the console (Django's
default paginator vs ours) and the operations list (first and deep keyset pages), on a
throwaway test database filled with N payments (PostgreSQL when DATABASE_URL points at one).

    make bench BENCH_ARGS=--rows=200000      # or: .venv/bin/python bench/console_lists.py
"""

from __future__ import annotations

import measuring

measuring.setup_django()

from django.core.paginator import Paginator  # noqa: E402
from django.utils import timezone  # noqa: E402
from measuring import Figure, throwaway_database, time_get  # noqa: E402

from payments.admin import PaymentAdmin  # noqa: E402
from payments.models import Payment  # noqa: E402


def fill(rows: int) -> None:
    print(f"Filling {rows:,} payments...")
    merchant = measuring.bench_merchant()
    now = timezone.now()

    def payment(n: int) -> Payment:
        return Payment(
            merchant=merchant,
            gateway="stripe",
            gateway_reference=f"pi_b{n}",
            amount=100 + n % 5000,
            currency="EUR",
            status="captured",
            captured_amount=100 + n % 5000,
            created_at=now,
        )

    measuring.bulk_fill(Payment, rows, payment, what="payments")


def main() -> None:
    rows = measuring.rows_option()
    with throwaway_database():
        fill(rows)
        client = measuring.staff_client()
        floor = time_get(client, "/healthz")  # the same middleware, no work: the floor
        results = []
        ours = (PaymentAdmin.paginator, PaymentAdmin.show_full_result_count)
        PaymentAdmin.paginator, PaymentAdmin.show_full_result_count = Paginator, True
        default = time_get(client, "/admin/payments/payment/")
        results.append(("console payments, Django's default paginator", default))
        PaymentAdmin.paginator, PaymentAdmin.show_full_result_count = ours
        results.append(
            ("console payments, LargeTablePaginator", time_get(client, "/admin/payments/payment/"))
        )
        results.append(("/payments/ first page", time_get(client, "/payments/")))
        deep = Payment.objects.order_by("pk").values_list("pk", flat=True)[rows // 100]
        results.append(
            ("/payments/ page at 99% depth (keyset)", time_get(client, f"/payments/?after={deep}"))
        )
        print(f"\n{rows:,} payments, median of 5 requests:")
        for label, timings in results:
            print(f"  {label:<48} {timings.p50:8.1f} ms  {timings.queries:3d} queries")
        measuring.report(
            "console_lists",
            [
                Figure(
                    label,
                    timings.p50,
                    "ms",
                    floor=floor.p50,
                    floor_name="/healthz",
                    target="<= 50",
                )
                for label, timings in results
            ],
            details={"rows": rows},
        )


if __name__ == "__main__":
    main()
