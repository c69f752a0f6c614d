"""Each check reads live evidence (the database, the settings, the running configuration) and
says, for one PCI DSS v4.0.1 requirement, whether it holds, what it saw, and how to fix it.

A check never changes anything. "unknown" means the evidence could not be read here (said with
the reason), never a pass."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks as django_checks
from django.db import connection, models
from django.db.models.functions import Cast
from django.utils import timezone

from config.querying import streamed

from .. import triggers
from ..accounts import inactive_staff
from ..checkpoints import verify_incremental
from ..models import AuditChainHead, PaymentAudit

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
MAX_NAMED = 10  # evidence names at most this many offenders, then counts the rest


@dataclass(frozen=True)
class Finding:
    requirement: str  # e.g. "8.4.2"
    title: str
    status: str  # PASS, FAIL or UNKNOWN
    evidence: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED])
    more = len(names) - MAX_NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def second_factor_for_every_staff_account() -> Finding:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    staff = get_user_model().objects.filter(is_active=True, is_staff=True)
    with_device = TOTPDevice.objects.filter(confirmed=True).values("user_id")
    missing = list(staff.exclude(pk__in=with_device).values_list("username", flat=True))
    required = settings.STAFF_REQUIRE_OTP
    if missing or not required:
        evidence = (
            f"{len(missing)} of {staff.count()} active staff accounts have no confirmed "
            f"second factor: {_named(missing)}."
            if missing
            else f"every one of {staff.count()} active staff accounts has a confirmed device"
        )
        if not required:
            evidence += " STAFF_REQUIRE_OTP is off: screens do not ask for the second factor."
        return Finding(
            "8.4.2",
            "Multi-factor authentication for all access to the cardholder data environment",
            FAIL,
            evidence,
            "Enrol a device for each person (manage.py enroll_totp <username>, then "
            "/audits/second-factor/) and set STAFF_REQUIRE_OTP=1.",
        )
    return Finding(
        "8.4.2",
        "Multi-factor authentication for all access to the cardholder data environment",
        PASS,
        f"All {staff.count()} active staff accounts have a confirmed TOTP device; "
        "STAFF_REQUIRE_OTP is on.",
    )


def inactive_accounts_disabled() -> Finding:
    days = settings.STAFF_INACTIVE_DAYS
    stale = list(inactive_staff().values_list("username", flat=True))
    scheduled = any(
        entry.get("task") == "audits.tasks.staff_disable_inactive"
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
    )
    title = f"Inactive accounts removed or disabled within {days} days"
    if stale or not scheduled or days > 90:
        problems = []
        if stale:
            problems.append(
                f"{len(stale)} active staff accounts unused for {days} days: {_named(stale)}"
            )
        if not scheduled:
            problems.append("the daily task audits.tasks.staff_disable_inactive is not scheduled")
        if days > 90:
            problems.append(f"STAFF_INACTIVE_DAYS is {days}, above the 90 the standard allows")
        return Finding(
            "8.2.6",
            title,
            FAIL,
            "; ".join(problems) + ".",
            "Run beat (it disables them daily) or disable them in the console; keep "
            "STAFF_INACTIVE_DAYS at 90 or less.",
        )
    return Finding(
        "8.2.6",
        title,
        PASS,
        f"No active staff account is unused for {days} days; beat disables them daily.",
    )


def lockout_configured() -> Finding:
    limit, cooloff = settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME
    minutes = int(cooloff.total_seconds() // 60) if cooloff else 0
    enabled = getattr(settings, "AXES_ENABLED", True)
    ok = enabled and 0 < limit <= 10 and minutes >= 30
    evidence = (
        f"sign-in locked after {limit} failures for {minutes} minutes "
        f"(by username and address){'' if enabled else '; AXES_ENABLED is off'}"
    )
    return Finding(
        "8.3.4",
        "Invalid authentication attempts limited: lockout after at most 10, for 30 minutes",
        PASS if ok else FAIL,
        evidence[0].upper() + evidence[1:] + ".",
        ""
        if ok
        else "Set SIGNIN_FAILURE_LIMIT to 10 or less and SIGNIN_LOCKOUT_MINUTES to 30 or more.",
    )


def session_idle_timeout() -> Finding:
    idle = settings.SESSION_IDLE_SECONDS
    ok = 0 < idle <= 15 * 60
    return Finding(
        "8.2.8",
        "Idle sessions require signing in again after at most 15 minutes",
        PASS if ok else FAIL,
        f"Sessions end after {idle // 60} minutes idle (SESSION_IDLE_SECONDS={idle}) and "
        f"{settings.SESSION_ABSOLUTE_SECONDS // 3600} hours in all.",
        "" if ok else "Set SESSION_IDLE_SECONDS to 900 or less.",
    )


def audit_trail_covers_every_record() -> Finding:
    from auditlog.registry import auditlog

    from ..querysets import AuditedModel

    audited = [m for m in apps.get_models() if issubclass(m, AuditedModel)]
    missing = [m._meta.label for m in audited if not auditlog.contains(m)]
    return Finding(
        "10.2",
        "Audit logs record every change to regulated records and every access-control change",
        FAIL if missing or not audited else PASS,
        f"Not in the change log: {_named(missing)}."
        if missing
        else f"{len(audited)} record types write both trails on every save; bulk writes "
        "that would skip them are refused; sign-ins and privilege changes go to the "
        "security trail.",
        "Register the model with auditlog (audits/registry.py)." if missing else "",
    )


TRIGGER_STATES = {
    "D": "disabled",
    "O": "enabled for ordinary sessions only",
    "R": "enabled for replication sessions only",
}


def _postgresql_trigger_states() -> dict[str, str]:
    """trigger name -> pg_trigger.tgenabled ('A' always, 'O' origin, 'D' disabled, ...)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.tgname, t.tgenabled FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relname = ANY(%s) AND NOT t.tgisinternal",
            [list(triggers.AUDIT_TABLES)],
        )
        return dict(cursor.fetchall())


def _partition_trigger_states() -> dict[str, str]:
    """'partition: trigger' -> tgenabled, for each partition of a partitioned trail table:
    the cloned row trigger and the partition's own TRUNCATE trigger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT part.relname, parent.relname, t.tgname, t.tgenabled FROM pg_inherits i "
            "JOIN pg_class part ON part.oid = i.inhrelid "
            "JOIN pg_class parent ON parent.oid = i.inhparent "
            "LEFT JOIN pg_trigger t ON t.tgrelid = part.oid AND NOT t.tgisinternal "
            "WHERE parent.relname = ANY(%s)",
            [list(triggers.TRAIL_TABLES)],
        )
        rows = cursor.fetchall()
    states: dict[str, str] = {}
    for part, parent, name, enabled in rows:
        for wanted in (f"{parent}_append_only", f"{part}_no_truncate"):
            states.setdefault(f"{part}: {wanted}", "")
        if name:
            states[f"{part}: {name}"] = enabled
    return states


def _sqlite_trigger_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        return {row[0] for row in cursor.fetchall()}


def audit_rows_protected() -> Finding:
    title = "Audit logs protected from change: append-only triggers present and always enabled"
    fix = "Reinstall them: manage.py migrate audits 0001 && manage.py migrate (or see README)."
    if connection.vendor == "postgresql":
        states = _postgresql_trigger_states()
        partition_states = _partition_trigger_states()
        states.update(partition_states)
        expected = [
            f"{table}_{name}"
            for table in triggers.AUDIT_TABLES
            for name in ("append_only", "no_truncate")
        ] + sorted(partition_states)
        wrong = [
            f"{name} ({TRIGGER_STATES.get(states.get(name, ''), 'missing')})"
            for name in expected
            if states.get(name) != "A"
        ]
        if wrong:
            return Finding("10.3.2", title, FAIL, f"Not always enabled: {_named(wrong)}.", fix)
        return Finding(
            "10.3.2",
            title,
            PASS,
            f"{len(expected)} triggers on {', '.join(triggers.AUDIT_TABLES)} and the trail's "
            "partitions are ENABLE ALWAYS "
            "(they fire for replication sessions too).",
        )
    if connection.vendor == "sqlite":
        names = _sqlite_trigger_names()
        expected = [f"{t}_no_{op}" for t in triggers.AUDIT_TABLES for op in ("update", "delete")]
        missing = [n for n in expected if n not in names]
        if missing:
            return Finding("10.3.2", title, FAIL, f"Missing: {_named(missing)}.", fix)
        return Finding("10.3.2", title, PASS, f"{len(expected)} triggers refuse UPDATE and DELETE.")
    return Finding("10.3.2", title, UNKNOWN, f"Not checked on {connection.vendor}.")


def audit_chains_verify() -> Finding:
    # From the last good checkpoint (every row when there is none), in this process.
    report, refused = verify_incremental(workers=1)
    heads = AuditChainHead.objects.count()
    title = "Audit log integrity: every hash chain verifies and its head is kept"
    if refused or not report.ok:
        shown = refused + [f"chain {p.chain} seq {p.seq}: {p.message}" for p in report.problems]
        return Finding(
            "10.3.4",
            title,
            FAIL,
            f"{len(shown)} problems in {report.rows_checked} rows: {_named(shown)}.",
            "Investigate as an incident: compare with the last exported evidence "
            "(manage.py verify_audit_chain --expect ...).",
        )
    return Finding(
        "10.3.4",
        title,
        PASS,
        f"{report.rows_checked} rows in {len(report.heads)} chains verify (from "
        f"{report.started_from}); "
        f"{heads} chain heads kept.",
    )


# Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes, not part of a longer
# run of letters or digits (hashes and ids), passing the Luhn check.
PAN_PREFILTER = r"[0-9]([ -]?[0-9]){12,18}"
PAN = re.compile(r"(?<![0-9A-Za-z])[0-9](?:[ -]?[0-9]){12,18}(?![0-9A-Za-z])")
NOT_SCANNED = re.compile(r"hash|digest|sha256|signature|password|key$")


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_numbers_in(text: str) -> Iterator[str]:
    for match in PAN.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits) and len(set(digits)) > 1:
            yield digits


def _text_columns(model: type[models.Model]) -> list[models.Field]:
    return [
        field
        for field in model._meta.concrete_fields
        if isinstance(field, (models.CharField, models.TextField, models.JSONField))
        and not NOT_SCANNED.search(field.name)
    ]


def stored_card_numbers() -> list[tuple[str, str, Any]]:
    """(model, field, primary key) of every stored value holding a card number. The database
    narrows to values with a long enough digit run; Python applies the Luhn check."""
    found = []
    for model in apps.get_models():
        for field in _text_columns(model):
            column = (
                Cast(field.name, models.TextField())
                if isinstance(field, models.JSONField)
                else models.F(field.name)
            )
            rows = (
                model._base_manager.annotate(_scanned=column)
                .filter(_scanned__regex=PAN_PREFILTER)
                .values_list("pk", "_scanned")
            )
            for pk, value in streamed(rows):
                if any(card_numbers_in(str(value))):
                    found.append((model._meta.label, field.name, pk))
    return found


def no_stored_card_numbers() -> Finding:
    found = stored_card_numbers()
    title = "No primary account numbers stored (only brand and last four)"
    if found:
        shown = [f"{label}.{field} #{pk}" for label, field, pk in found]
        return Finding(
            "3.3/3.4",
            title,
            FAIL,
            f"{len(found)} stored values hold a card number: {_named(shown)}.",
            "Remove the number from the record (edit it through its screen; audit rows keep "
            "it: raise an incident and follow the retention procedure).",
        )
    scanned = sum(len(_text_columns(m)) for m in apps.get_models())
    return Finding(
        "3.3/3.4",
        title,
        PASS,
        f"{scanned} text and JSON columns scanned: no 13-19 digit number passing the Luhn check.",
    )


def deployment_checks_clean() -> Finding:
    messages = [
        m
        for m in django_checks.run_checks(include_deployment_checks=True)
        if m.level >= django_checks.WARNING and not m.is_silenced()
    ]
    title = "Secure configuration: Django's deployment checks (check --deploy) pass"
    if messages:
        return Finding(
            "2.2",
            title,
            FAIL,
            f"{len(messages)} warnings: {_named([m.id or m.msg[:60] for m in messages])}.",
            "Run manage.py check --deploy on the production settings and fix each one.",
        )
    return Finding("2.2", title, PASS, "check --deploy reports nothing for these settings.")


def keys_rotated() -> Finding:
    """3.6/3.7: data on the newest key, and that key younger than its cryptoperiod."""
    from ..crypto.keys import provider
    from ..crypto.rotation import ERASED_KEY, PERSON_KEY, audit_key_status, key_status

    title = "Encryption keys managed: data on the newest key, rotated within the cryptoperiod"
    newest = provider().key_ids()[0]
    audit_labels = set(audit_key_status())
    behind = {
        # A value under a person's key is as current as that key, counted in its own line.
        label: sum(n for key, n in counts.items() if key not in (newest, PERSON_KEY, ERASED_KEY))
        for label, counts in key_status().items()
        if label not in audit_labels
    }
    behind = {label: n for label, n in behind.items() if n}
    period = settings.KEY_CRYPTOPERIOD_DAYS
    rotated_onto = (
        PaymentAudit.objects.filter(action_type="security.keys.rotate", object_id=newest)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    trail_start = (
        PaymentAudit.objects.order_by("created_at").values_list("created_at", flat=True).first()
    )
    since = rotated_onto or trail_start
    problems = []
    if behind:
        problems.append(
            f"{sum(behind.values())} values or files not on the newest key {newest}: "
            + _named([f"{label} ({n})" for label, n in behind.items()])
        )
    if since is not None and (timezone.now() - since).days > period:
        problems.append(
            f"key {newest} in service since {since:%Y-%m-%d}, beyond the {period}-day cryptoperiod"
        )
    origin = (
        f"rotated onto on {rotated_onto:%Y-%m-%d}"
        if rotated_onto
        else "no rotation recorded; in service at least since the trail began"
        + (f" ({trail_start:%Y-%m-%d})" if trail_start else "")
    )
    if problems:
        return Finding(
            "3.6/3.7",
            title,
            FAIL,
            "; ".join(problems) + f" ({origin}).",
            "Put a new key first in FIELD_ENCRYPTION_KEYS (or the key provider) and run "
            "manage.py rotate_keys; keep older keys while audit rows use them (key_status).",
        )
    return Finding(
        "3.6/3.7",
        title,
        PASS,
        f"Every encrypted value and file is on key {newest} ({origin}); "
        f"{len(provider().key_ids())} keys configured; cryptoperiod {period} days.",
    )


LOCK_FILE = Path(settings.BASE_DIR) / "requirements.lock"


def dependencies_pinned() -> Finding:
    title = "Software components inventoried and pinned; installed versions match the pins"
    try:
        lines = [
            line.strip()
            for line in LOCK_FILE.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
    except FileNotFoundError:
        return Finding("6.3.2", title, FAIL, "requirements.lock is missing.", "Run make lock.")
    unpinned, differ = [], []
    for line in lines:
        name, sep, version = line.partition("==")
        if not sep:
            unpinned.append(line)
            continue
        try:
            installed = metadata.version(name.split("[")[0])
        except metadata.PackageNotFoundError:
            differ.append(f"{name} (not installed)")
            continue
        if installed != version:
            differ.append(f"{name} {installed} (pinned {version})")
    if unpinned or differ:
        return Finding(
            "6.3.2",
            title,
            FAIL,
            "; ".join(
                part
                for part in (
                    f"not pinned: {_named(unpinned)}" if unpinned else "",
                    f"installed differs: {_named(differ)}" if differ else "",
                )
                if part
            )
            + ".",
            "make install (installs exactly requirements.lock).",
        )
    return Finding(
        "6.3.2", title, PASS, f"{len(lines)} packages pinned; every one installed as pinned."
    )


ADVISORY_PROBE = "https://pypi.org/pypi/pip/json"


def _advisories_reachable() -> str:
    """Empty when the advisory database answers, else why not."""
    try:
        with urllib.request.urlopen(ADVISORY_PROBE, timeout=3) as response:  # nosec B310
            return "" if response.status == 200 else f"it answered HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"it answered HTTP {error.code}"
    except OSError as error:
        return f"it could not be reached ({error.__class__.__name__})"


def known_vulnerabilities() -> Finding:
    import shutil
    import subprocess  # nosec B404

    title = "Known vulnerabilities in dependencies identified (pip-audit)"
    executable = shutil.which("pip-audit")
    unreachable = _advisories_reachable()
    if executable is None or unreachable:
        why = []
        if executable is None:
            why.append("pip-audit is not installed here (pip install pip-audit)")
        if unreachable:
            why.append(f"PyPI's advisory database at {ADVISORY_PROBE}: {unreachable}")
        return Finding(
            "6.3.3",
            title,
            UNKNOWN,
            "Not run: " + "; ".join(why) + ".",
            "Run pip-audit -r requirements.lock where the advisory database is reachable "
            "(CI with internet access) and keep its output with this report.",
        )
    done = subprocess.run(  # noqa: S603  # nosec B603
        [executable, "-r", str(LOCK_FILE), "--progress-spinner", "off"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    last = (done.stdout.strip().splitlines() or [done.stderr.strip()])[-1:]
    return Finding(
        "6.3.3",
        title,
        PASS if done.returncode == 0 else FAIL,
        f"pip-audit: {' '.join(last) or 'no output'}",
        "" if done.returncode == 0 else "Upgrade the packages pip-audit names (make lock).",
    )


CHECKS: list[Callable[[], Finding]] = [
    second_factor_for_every_staff_account,
    inactive_accounts_disabled,
    lockout_configured,
    session_idle_timeout,
    audit_trail_covers_every_record,
    audit_rows_protected,
    audit_chains_verify,
    no_stored_card_numbers,
    keys_rotated,
    deployment_checks_clean,
    dependencies_pinned,
    known_vulnerabilities,
]


def run_checks() -> list[Finding]:
    findings = []
    for check in CHECKS:
        try:
            findings.append(check())
        except Exception as error:  # a check that cannot read its evidence says so
            findings.append(
                Finding(
                    check.__name__,
                    check.__doc__ or check.__name__.replace("_", " "),
                    UNKNOWN,
                    f"The check could not run: {error.__class__.__name__}: {error}",
                )
            )
    return findings
