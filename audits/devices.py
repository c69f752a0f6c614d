"""Device fingerprints: who was seen on which device, and what is new.

The fingerprint is computed on the server from what every request carries (the browser and OS
family from the user agent, without versions, so an update is not a new device; the first
Accept-Language tag; the client hints Sec-CH-UA-Platform and Sec-CH-UA-Mobile; the client's IP
network, /24 for IPv4 and /48 for IPv6) combined with the client's device id (X-Device-Id, or
the signed cookie audits/client.py gives browsers), and hashed. It is kept per subject: a staff
person ('auth.user:<id>'), an API token and a merchant. A staff sign-in from a new device is
written to the security trail (`security.device_new`), shown to the person and to
administrators, and asks for the second factor (config/signin.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from . import context
from .models import KnownDevice

_BROWSERS = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("Safari", re.compile(r"Safari/")),
    ("curl", re.compile(r"^curl/")),
    ("python", re.compile(r"python-requests|python-urllib|aiohttp|httpx", re.I)),
)
_SYSTEMS = (
    ("Android", re.compile(r"Android")),
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Mac OS X|Macintosh")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Linux", re.compile(r"Linux|X11")),
)


def _family(user_agent: str, table: tuple[tuple[str, re.Pattern[str]], ...]) -> str:
    for name, pattern in table:
        if pattern.search(user_agent):
            return name
    return "other" if user_agent else "none"


def network_of(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network of an address; '' if it is not one."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@dataclass(frozen=True)
class Fingerprint:
    key: str  # SHA-256 hex of every part
    network: str
    summary: dict[str, Any]


def fingerprint(request: Any) -> Fingerprint:
    """The request's device fingerprint; the client IP and device id are the audit context's
    (bound by audits.middleware, trusted proxies resolved)."""
    meta = getattr(request, "META", {})
    bound = context.current()
    user_agent = str(meta.get("HTTP_USER_AGENT", ""))[:512]
    language = str(meta.get("HTTP_ACCEPT_LANGUAGE", "")).split(",")[0].split(";")[0].strip()
    summary = {
        "browser": _family(user_agent, _BROWSERS),
        "os": _family(user_agent, _SYSTEMS),
        "language": language.lower()[:16],
        "platform": str(meta.get("HTTP_SEC_CH_UA_PLATFORM", "")).strip('" ')[:32],
        "mobile": str(meta.get("HTTP_SEC_CH_UA_MOBILE", "")).strip()[:4],
    }
    network = network_of(bound.ip_address or "")
    device_id = bound.device_id or ""
    parts = ["v1", *summary.values(), network, device_id]
    key = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return Fingerprint(key, network, {**summary, "network": network})


@dataclass(frozen=True)
class Seen:
    device: KnownDevice
    new_device: bool
    new_network: bool
    first_for_subject: bool


def device_seen(*, subject: str, fp: Fingerprint) -> Seen:
    """Record that `subject` was seen on the device; say whether device and network are new."""
    now = timezone.now()
    with transaction.atomic():
        known = list(
            KnownDevice.objects.select_for_update()
            .filter(subject=subject)
            .values_list("fingerprint", "network")
        )
        fingerprints = {f for f, _ in known}
        networks = {n for _, n in known}
        if fp.key in fingerprints:
            device = KnownDevice.objects.get(subject=subject, fingerprint=fp.key)
            device.last_seen = now
            device.save(update_fields=["last_seen"])
            return Seen(device, False, fp.network not in networks, False)
        try:
            with transaction.atomic():
                device = KnownDevice.objects.create(
                    subject=subject,
                    fingerprint=fp.key,
                    network=fp.network,
                    summary=fp.summary,
                    first_seen=now,
                    last_seen=now,
                )
        except IntegrityError:  # the same device seen twice at once: the other one wrote it
            device = KnownDevice.objects.get(subject=subject, fingerprint=fp.key)
            return Seen(device, False, False, False)
        return Seen(device, True, fp.network not in networks, not known)


def is_known(*, subject: str, fp: Fingerprint) -> bool:
    return KnownDevice.objects.filter(subject=subject, fingerprint=fp.key).exists()


def user_subject(user: Any) -> str:
    return f"auth.user:{user.pk}"


def staff_signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """user_logged_in receiver: a staff sign-in from a device the person never used is written
    to the security trail and told to the person."""
    if request is None or not getattr(user, "is_staff", False):
        return
    from .behaviour import staff_activity_record, staff_new_network, staff_security_record
    from .models import StaffActivityKind

    fp = fingerprint(request)
    seen = device_seen(subject=user_subject(user), fp=fp)
    staff_activity_record(user=user, kind=StaffActivityKind.SIGNIN)
    if seen.new_network and not seen.first_for_subject and fp.network:
        staff_new_network(user=user, network=fp.network)
    if seen.new_device:
        staff_security_record(
            user=user,
            action="device_new",
            after={
                **fp.summary,
                "new_network": seen.new_network,
                "first_device": seen.first_for_subject,
            },
        )
        if hasattr(request, "_messages"):
            from django.contrib import messages

            messages.warning(
                request,
                f"Signed in from a new device: {seen.device}. If this was not you, tell an "
                "administrator and change your password.",
            )
