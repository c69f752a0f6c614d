"""Write a development .env when there is none, so that manage.py commands run as the README
writes them (no DEBUG to export) after `make run`. An existing .env is never touched.

Usage: python tools/dev_env.py [PATH]   (default: .env next to manage.py)

Standard library only: `make` runs it before anything else is installed.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

# The key config/settings.py falls back to with DEBUG on and no key set. It stays second
# (keys are newest first) so that a database seeded before this file existed stays readable.
DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE="


def dev_env() -> str:
    field_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    return (
        "# Written by `make run` (tools/dev_env.py) for development only: never deploy it.\n"
        "# Production sets these in its environment (README, Configuration).\n"
        "DEBUG=1\n"
        f"SECRET_KEY={secrets.token_urlsafe(50)}\n"
        f"FIELD_ENCRYPTION_KEYS={field_key},{DEV_FIELD_KEY}\n"
    )


def write_dev_env(path: Path) -> bool:
    """Write `path` unless it exists; True when written. Owner-only: it holds secrets."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(dev_env())
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / ".env"
    if write_dev_env(path):
        print(f"Wrote {path} for development (DEBUG=1, random SECRET_KEY and field key).")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
