"""The client's IP address and device id, decided once per request."""

from __future__ import annotations

import ipaddress
import re
import uuid

from django.conf import settings
from django.core import signing
from django.http import HttpRequest

DEVICE_HEADER_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
DEVICE_COOKIE_SALT = "audits.device-id"


def _is_trusted_proxy(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in network for network in settings.TRUSTED_PROXIES)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, unless it is a trusted proxy: then the nearest X-Forwarded-For hop that is
    not itself a trusted proxy. A client cannot choose its recorded address by sending the
    header, because the header is read only when a proxy we trust delivered the request."""
    peer = _parse(request.META.get("REMOTE_ADDR", "")) or ipaddress.ip_address("127.0.0.1")
    if not _is_trusted_proxy(peer):
        return peer.compressed
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([part for part in forwarded.split(",") if part.strip()]):
        address = _parse(hop)
        if address is None:
            break  # a malformed hop: stop believing the chain here
        if not _is_trusted_proxy(address):
            return address.compressed
        peer = address
    return peer.compressed


def device_id_from_header(request: HttpRequest) -> str | None:
    value = request.headers.get("X-Device-Id", "")
    return value if DEVICE_HEADER_PATTERN.match(value) else None


def device_id_from_cookie(request: HttpRequest) -> str | None:
    try:
        value = request.get_signed_cookie(
            settings.DEVICE_ID_COOKIE, salt=DEVICE_COOKIE_SALT, default=None
        )
    except signing.BadSignature:
        return None
    return value if value and DEVICE_HEADER_PATTERN.match(value) else None


def new_device_id() -> str:
    return uuid.uuid4().hex
