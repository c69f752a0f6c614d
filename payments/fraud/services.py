"""Every write to the rules and the alerts. Rules: compliance officers only, and a change is a
new version (the current one is retired in the same transaction). Alerts: whoever reviews
them (analysts, compliance, operations) assigns, notes and closes them as fraud or a false
positive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audits import context

from ..core.errors import DomainError
from ..core.records import create_valid
from .checks import FraudRuleInvalid, validate_params
from .models import AlertStatus, FraudAlert, FraudAlertNote, FraudRule

if TYPE_CHECKING:
    from django.contrib.auth.models import User

EDIT_RULES = "payments.change_fraudrule"
REVIEW_ALERTS = "payments.review_fraudalert"


class FraudPermissionRefused(DomainError):
    http_status = 403


class FraudAlertRefused(DomainError):
    http_status = 409


def _require(actor: User, permission: str, what: str) -> None:
    if not actor.has_perm(permission):
        raise FraudPermissionRefused(f"{what} needs the permission '{permission}'.")


def _clean(*, name: str, kind: str, params: Any, score: Any) -> dict[str, Any]:
    if not name.strip():
        raise FraudRuleInvalid("A rule needs a name.")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 100:
        raise FraudRuleInvalid("The score must be a whole number from 1 to 100.")
    return {"name": name.strip(), "kind": kind, "params": validate_params(kind, params)}


def fraud_rule_create(
    *,
    key: str,
    name: str,
    kind: str,
    params: Any,
    score: int,
    enabled: bool = True,
    note: str = "",
    actor: User,
) -> FraudRule:
    """Version 1 of a new rule."""
    _require(actor, EDIT_RULES, "Writing fraud rules")
    cleaned = _clean(name=name, kind=kind, params=params, score=score)
    with transaction.atomic(), context.acting(actor):
        if FraudRule.objects.filter(key=key).exists():
            raise FraudRuleInvalid(f"A rule '{key}' exists already: change it instead.")
        try:
            with transaction.atomic():
                return create_valid(
                    FraudRule(
                        key=key,
                        score=score,
                        enabled=enabled,
                        change_note=note[:255],
                        created_by=actor,
                        **cleaned,
                    )
                )
        except IntegrityError as exc:  # a create racing with ours
            raise FraudRuleInvalid(f"A rule '{key}' exists already: change it instead.") from exc


def fraud_rule_change(
    *,
    rule: FraudRule,
    actor: User,
    note: str,
    name: str | None = None,
    params: Any = None,
    score: int | None = None,
    enabled: bool | None = None,
) -> FraudRule:
    """The next version of a rule with the changes; the current version is retired. The
    kind stays: a different check is a different rule."""
    _require(actor, EDIT_RULES, "Changing fraud rules")
    if not note.strip():
        raise FraudRuleInvalid("Say why the rule changes: the note is kept with the version.")
    with transaction.atomic(), context.acting(actor):
        current = (
            FraudRule.objects.select_for_update().filter(key=rule.key, is_current=True).first()
        )
        if current is None:
            raise FraudRuleInvalid(f"Rule '{rule.key}' has no current version.")
        cleaned = _clean(
            name=current.name if name is None else name,
            kind=current.kind,
            params=current.params if params is None else params,
            score=current.score if score is None else score,
        )
        new_score = current.score if score is None else score
        new_enabled = current.enabled if enabled is None else enabled
        if (cleaned["name"], cleaned["params"], new_score, new_enabled) == (
            current.name,
            current.params,
            current.score,
            current.enabled,
        ):
            raise FraudRuleInvalid("Nothing changed: no new version written.")
        current.is_current = False
        current.save()
        return create_valid(
            FraudRule(
                key=current.key,
                version=current.version + 1,
                score=new_score,
                enabled=new_enabled,
                change_note=note.strip()[:255],
                created_by=actor,
                **cleaned,
            )
        )


def _open_alert(alert: FraudAlert) -> FraudAlert:
    alert = FraudAlert.objects.select_for_update().get(pk=alert.pk)
    if alert.status != AlertStatus.OPEN:
        raise FraudAlertRefused(f"Alert {alert.pk} is closed ({alert.get_status_display()}).")
    return alert


def fraud_alert_assign(*, alert: FraudAlert, assignee: User | None, actor: User) -> FraudAlert:
    _require(actor, REVIEW_ALERTS, "Working fraud alerts")
    if assignee is not None and not assignee.has_perm(REVIEW_ALERTS):
        raise FraudPermissionRefused(f"{assignee.get_username()} cannot review fraud alerts.")
    with transaction.atomic(), context.acting(actor):
        alert = _open_alert(alert)
        alert.assignee = assignee
        alert.save()
        return alert


def fraud_alert_note(*, alert: FraudAlert, text: str, actor: User) -> FraudAlertNote:
    _require(actor, REVIEW_ALERTS, "Working fraud alerts")
    if not text.strip():
        raise FraudRuleInvalid("A note needs some text.")
    with transaction.atomic(), context.acting(actor):
        alert = FraudAlert.objects.select_for_update().get(pk=alert.pk)
        return create_valid(FraudAlertNote(alert=alert, author=actor, text=text.strip()))


def fraud_alert_close(*, alert: FraudAlert, outcome: str, note: str, actor: User) -> FraudAlert:
    """Close an alert as fraud or as a false positive, with why. The outcome counts toward the
    measured precision of every rule that fired in its evaluation."""
    _require(actor, REVIEW_ALERTS, "Working fraud alerts")
    if outcome not in (AlertStatus.FRAUD, AlertStatus.FALSE_POSITIVE):
        raise FraudRuleInvalid("Close an alert as 'fraud' or 'false_positive'.")
    if not note.strip():
        raise FraudRuleInvalid("Say why the alert is closed so.")
    with transaction.atomic(), context.acting(actor):
        alert = _open_alert(alert)
        create_valid(FraudAlertNote(alert=alert, author=actor, text=note.strip()))
        alert.status = outcome
        alert.closed_by, alert.closed_at = actor, timezone.now()
        alert.save()
        return alert
