from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from audits.commands import AuditedCommand
from payments.integration.tokens import api_token_create
from payments.models import ApiToken, Merchant


class Command(AuditedCommand):
    help = (
        "Issue an API token and print it once (only its hash is stored). Without --merchant "
        "it is a staff token; with it, it sees only that merchant's data."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--owner", required=True, help="username: the audit trail's actor")
        parser.add_argument("--name", required=True, help="what the token is for")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            choices=ApiToken.SCOPES,
            help="repeat for several scopes",
        )
        parser.add_argument("--merchant", type=int, help="bind the token to this merchant id")
        parser.add_argument("--hours", type=int, help="lifetime (default 24)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["owner"]).first()
        if user is None or not user.is_active:
            raise CommandError(f"No active user {options['owner']!r}.")
        merchant = None
        if options["merchant"] is not None:
            merchant = Merchant.objects.filter(pk=options["merchant"]).first()
            if merchant is None:
                raise CommandError(f"No merchant {options['merchant']}.")
        try:
            token, raw = api_token_create(
                owner=user,
                name=options["name"],
                scopes=options["scope"],
                merchant=merchant,
                hours=options["hours"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(
            f"Token {token.prefix} for {user.username}"
            f"{f' (merchant {merchant.pk})' if merchant else ' (staff)'}, scopes "
            f"{' '.join(token.scopes)}, expires {token.expires_at.isoformat()}.\n"
            "Copy it now, it is not stored and will not be shown again:\n"
        )
        self.stdout.write(raw)
