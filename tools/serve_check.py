"""Before `make serve` starts gunicorn: say which production variables are missing or wrong.

Usage: python tools/serve_check.py        (exit 1 with the list when something is missing)

It reads the process environment only: the development .env that `make run` writes is never a
production configuration. Standard library only, so it answers before anything is imported.
"""

from __future__ import annotations

import os
import sys

# name -> why it is needed (config/settings.py refuses to start, or production cannot work).
REQUIRED = {
    "SECRET_KEY": "Django's signing key (sessions, CSRF, signed cookies)",
    "FIELD_ENCRYPTION_KEYS": "the keys of the data encrypted at rest (newest first)",
    "AUDIT_CHECKPOINT_SIGNING_KEY": "the Ed25519 key signing the audit chains' checkpoints",
    "ALLOWED_HOSTS": "the host names this server answers to (comma-separated)",
    "DATABASE_URL": "PostgreSQL, e.g. postgres://user:pass@host:5432/backoffice",
    "CELERY_BROKER_URL": "Redis for the worker and beat, e.g. redis://host:6379/0 "
    "(without it webhooks are processed inside the request)",
}
# Not needed to start, but a production server without them is missing something.
RECOMMENDED = {
    "METRICS_TOKEN": "/metrics answers 403 without it",
    "CSRF_TRUSTED_ORIGINS": "the https:// origin of the console, behind a TLS proxy",
    "SECURE_PROXY_SSL": "1 when a proxy terminates TLS and sets X-Forwarded-Proto",
}
GATEWAYS = ("STRIPE_WEBHOOK_SECRET", "BRAINTREE_MERCHANT_ID")


def problems(environ: dict[str, str]) -> tuple[list[str], list[str]]:
    errors = [
        f"  {name}: {why}" for name, why in REQUIRED.items() if not environ.get(name, "").strip()
    ]
    database = environ.get("DATABASE_URL", "")
    if database and not database.startswith(("postgres://", "postgresql://", "pgsql://")):
        errors.append("  DATABASE_URL: must be PostgreSQL in production (SQLite is for the demo)")
    if environ.get("DEBUG", "0").lower() in ("1", "true", "yes", "on"):
        errors.append("  DEBUG: must be off (0) in production")
    if environ.get("SANDBOX_ENABLED", "0").lower() in ("1", "true", "yes", "on"):
        errors.append("  SANDBOX_ENABLED: the sandbox gateway is refused in production")
    warnings = [
        f"  {name}: {why}" for name, why in RECOMMENDED.items() if not environ.get(name, "").strip()
    ]
    if not any(environ.get(name) for name in GATEWAYS):
        warnings.append("  STRIPE_* or BRAINTREE_*: no gateway is configured")
    return errors, warnings


def main() -> int:
    errors, warnings = problems(dict(os.environ))
    if warnings:
        print("make serve: not set (the server starts without them):")
        print("\n".join(warnings))
    if errors:
        print("make serve: production settings are incomplete; set these and run it again:")
        print("\n".join(errors))
        print("(README, Deployment: every variable; `make run` is the development server.)")
        return 1
    print("make serve: production settings complete.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
