"""Two staff users per role, so that four eyes and maker-checker can be tried; their passwords
are made once, kept in var/demo_credentials.json (mode 0600) and printed by seed_demo."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group

from audits import roles

CREDENTIALS_FILE = settings.VAR_DIR / "demo_credentials.json"

STAFF = [
    ("analyst", "Alex", "Analyst", roles.KYC_ANALYST),
    ("analyst2", "Sam", "Second-Analyst", roles.KYC_ANALYST),
    ("officer", "Olivia", "Officer", roles.COMPLIANCE_OFFICER),
    ("officer2", "Omar", "Second-Officer", roles.COMPLIANCE_OFFICER),
    ("ops", "Priya", "Operations", roles.PAYMENTS_OPERATIONS),
    ("ops2", "Pavel", "Second-Operations", roles.PAYMENTS_OPERATIONS),
    ("auditor", "Aude", "Auditor", roles.AUDITOR),
    ("auditor2", "Arun", "Second-Auditor", roles.AUDITOR),
    ("admin", "Ada", "Administrator", roles.ADMINISTRATOR),
    ("admin2", "Amir", "Second-Administrator", roles.ADMINISTRATOR),
]


def staff_users(*, credentials_file: Any = None) -> dict[str, Any]:
    """The demo staff by username, created or completed; a password is set only for a user
    that has none on file, so running again changes nobody's password."""
    path = credentials_file or CREDENTIALS_FILE
    user_model = get_user_model()
    stored = read_credentials(path)
    users = {}
    new_passwords = {}
    for username, first, last, role in STAFF:
        user, created = user_model.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first,
                "last_name": last,
                "is_staff": True,
                "email": f"{username}@backoffice.example",
            },
        )
        if created or username not in stored:
            stored[username] = new_passwords[username] = secrets.token_urlsafe(12)
        user.groups.add(Group.objects.get(name=role))
        users[username] = user
    # Hashing is slow on purpose (PBKDF2); hashlib releases the GIL, so hash them side by side.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        hashes = dict(
            zip(new_passwords, pool.map(make_password, new_passwords.values()), strict=True)
        )
    for username, hashed in hashes.items():
        users[username].password = hashed
        users[username].save(update_fields=["password"])
    write_credentials(path, stored)
    return users


def read_credentials(path: Any) -> dict[str, str]:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def write_credentials(path: Any, stored: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(stored, handle, indent=2)


def print_credentials(write: Callable[[str], Any], *, credentials_file: Any = None) -> None:
    path = credentials_file or CREDENTIALS_FILE
    stored = read_credentials(path)
    write("")
    # make run passes the address it serves on (HOST, PORT); 127.0.0.1:8000 is runserver's.
    host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
    write(f"Sign in at http://{host}:{port}/admin/ with one of these demo users")
    write(f"(passwords kept in {path}, demo only):")
    for username, _, _, role in STAFF:
        write(f"  {username:<10} {stored.get(username, '?'):<20} {role}")
