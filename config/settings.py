"""Settings for the back-office: one module, every deploy-specific value from the environment.

A malformed value stops start-up (django-environ raises ImproperlyConfigured); no secret has a
default outside DEBUG. See README.md, "Configuration", for every variable.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A development key exists only with DEBUG on, so a production start without SECRET_KEY fails.
_DEV_SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdef"  # noqa: S105  # nosec B105
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Proxies whose X-Forwarded-For we believe (addresses or networks). Everyone else's is ignored.
try:
    TRUSTED_PROXIES = [
        ipaddress.ip_network(value, strict=False)
        for value in env.list("TRUSTED_PROXIES", default=[])
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}") from exc

INSTALLED_APPS = [
    # audits first: its auditlogflush command shadows django-auditlog's.
    "audits",
    "payments",
    "kyc",
    "config.apps.BackofficeAdminConfig",  # the admin, with a second factor
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",  # its widget templates, for FORM_RENDERER below
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "auditlog",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "csp",
]

MIDDLEWARE = [
    # First: the request id every later log line, audit row and task carries (X-Request-ID).
    "config.request_id.RequestIdMiddleware",
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before anything reads the body: 413 for an oversized one, 400 for NUL bytes.
    "config.middleware.RequestGuardMiddleware",
    # Then a webhook goes straight to its view: none of what follows is for gateways.
    "config.webhook_lane.WebhookLaneMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "config.second_factor.RequireSecondFactorMiddleware",
    # After authentication: the single source of who (user), where (IP) and which device.
    "audits.middleware.RequestContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After messages (it tells why): an expired session is ended before any view runs.
    "config.sessions.SessionLimitsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that it sees the sign-in page's answer and can keep it for a locked-out attempt.
    "axes.middleware.AxesMiddleware",
]

# django-axes checks a lockout before the password, then Django's own backend.
AUTHENTICATION_BACKENDS = [
    "config.signin.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# Widgets render through TEMPLATES, so templates/ can override one (the console's split date and
# time, which has no labels of its own).
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
# A read replica (a streaming-replication standby) for the screens and exports that only read
# (config/db_router.py names them). Off unless set; writes and everything else use "default".
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
DATABASE_REPLICA_ALIAS = "replica" if DATABASE_REPLICA_URL else ""
DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
for _database in DATABASES.values():
    # Persistent connections: a new connection per request cost a webhook more than its work
    # (issue 14). Each worker thread keeps one, checked before reuse after an error or a restart
    # of the server. Off under DEBUG so that runserver's threads do not pile up connections.
    _database["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0 if DEBUG else 60)
    _database["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
    # Behind PgBouncer in transaction mode a server-side cursor may outlive its server
    # connection; config.querying.streamed keeps each one inside a transaction, which is enough.
    # Set this to turn them off entirely (exports then hold their result set in memory).
    _database["DISABLE_SERVER_SIDE_CURSORS"] = env.bool(
        "DISABLE_SERVER_SIDE_CURSORS", default=False
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# KYC documents live outside the web root and are never served by a static handler.
PRIVATE_MEDIA_ROOT = Path(env.str("PRIVATE_MEDIA_ROOT", default=str(VAR_DIR / "private")))
STORAGES = {
    "default": {
        # Every stored file (KYC documents, chargeback evidence) is encrypted on disk.
        "BACKEND": "audits.crypto.storage.EncryptedFileSystemStorage",
        "OPTIONS": {"location": PRIVATE_MEDIA_ROOT},
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}

LOGIN_URL = "admin:login"
LOGOUT_REDIRECT_URL = "admin:login"
# Staff sign in with a password and a TOTP code (django-otp). On by default outside DEBUG; the
# embedded demo and the test suite turn it on where they test it.
STAFF_REQUIRE_OTP = env.bool("STAFF_REQUIRE_OTP", default=not DEBUG)
OTP_TOTP_ISSUER = "Back-office"

# Data encrypted at rest (audits/crypto/): 32-byte keys in URL-safe base64 (the Fernet key
# format), newest first, so values stay readable during rotation. They are key-encryption keys:
# each value or file has its own data key, wrapped by the provider named below.
KEY_PROVIDER = env.str("KEY_PROVIDER", default="audits.crypto.providers.SettingsKeyProvider")
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set when DEBUG is off.")
    FIELD_ENCRYPTION_KEYS = ["ZGV2LW9ubHktZmllbGQta2V5LW5vdC1mb3ItcHJvZCE="]
if KEY_PROVIDER == "audits.crypto.providers.SettingsKeyProvider":
    from audits.crypto.providers import SettingsKeyProvider

    SettingsKeyProvider(FIELD_ENCRYPTION_KEYS)  # a malformed or repeated key stops start-up
# PCI DSS 3.6.1/3.7.4: the compliance report fails when the newest key is older than this.
KEY_CRYPTOPERIOD_DAYS = env.int("KEY_CRYPTOPERIOD_DAYS", default=365)

# Erasure (GDPR art. 17) by crypto-shredding: each contact person's data has its own key
# (audits/crypto/subjects.py). Another process may keep reading a just-erased person's data from
# its cache for at most this long.
SUBJECT_KEY_CACHE_SECONDS = env.int("SUBJECT_KEY_CACHE_SECONDS", default=60)
# Legal holds: how long after its last record of each type a person's data must be kept (AML:
# five years after the relationship's records; PCI DSS and local law may say more).
DATA_RETENTION_DAYS = {
    "kyc.kyccase": env.int("RETENTION_KYC_CASE_DAYS", default=5 * 365),
    "payments.payment": env.int("RETENTION_PAYMENT_DAYS", default=5 * 365),
    "payments.chargeback": env.int("RETENTION_CHARGEBACK_DAYS", default=5 * 365),
}

# Gateways: unset means disabled, and the gateway layer says so when asked to act.
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.list("STRIPE_WEBHOOK_SECRET", default=[])
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
BRAINTREE_ENVIRONMENT = env.str("BRAINTREE_ENVIRONMENT", default="")
BRAINTREE_MERCHANT_ID = env.str("BRAINTREE_MERCHANT_ID", default="")
BRAINTREE_PUBLIC_KEY = env.str("BRAINTREE_PUBLIC_KEY", default="")
BRAINTREE_PRIVATE_KEY = env.str("BRAINTREE_PRIVATE_KEY", default="")

# The sandbox gateway (payments/gateways/sandbox.py): our own test gateway, on by default with
# DEBUG and refused outside it, because it "takes" payments without moving any money.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)
if SANDBOX_ENABLED and not DEBUG:
    raise ImproperlyConfigured(
        "SANDBOX_ENABLED is on with DEBUG off: the sandbox gateway fakes payments and is refused "
        "in production. Unset SANDBOX_ENABLED (or set it to off)."
    )
# Its webhooks are signed like Stripe's (HMAC-SHA256 over "timestamp.body") with this secret and
# posted to this address a moment later; an empty address, or one nobody answers on, hands them
# to the inbox in-process instead (README "Sandbox gateway").
_DEV_SANDBOX_SECRET = "sbx_whsec_dev_only_not_a_secret"  # noqa: S105  # nosec B105
SANDBOX_WEBHOOK_SECRET = env.str(
    "SANDBOX_WEBHOOK_SECRET", default=_DEV_SANDBOX_SECRET if SANDBOX_ENABLED else ""
)
SANDBOX_WEBHOOK_URL = env.str(
    "SANDBOX_WEBHOOK_URL", default="http://127.0.0.1:8000/webhooks/sandbox/"
)
SANDBOX_WEBHOOK_DELAY_SECONDS = env.int("SANDBOX_WEBHOOK_DELAY_SECONDS", default=2)
# The gateway a payment goes through when its creator names none (the API, the demo): the one
# whose keys are set, else the sandbox in DEBUG. Setting it (stripe or braintree, with that
# gateway's test keys) switches the demo from the sandbox to a real test gateway.
PAYMENTS_DEFAULT_GATEWAY = env.str(
    "PAYMENTS_DEFAULT_GATEWAY",
    default="stripe"
    if STRIPE_API_KEY
    else "braintree"
    if BRAINTREE_MERCHANT_ID
    else "sandbox"
    if SANDBOX_ENABLED
    else "stripe",
)
if PAYMENTS_DEFAULT_GATEWAY not in ("stripe", "braintree", "sandbox"):
    raise ImproperlyConfigured(
        f"PAYMENTS_DEFAULT_GATEWAY={PAYMENTS_DEFAULT_GATEWAY!r}: use stripe, braintree or sandbox."
    )
if PAYMENTS_DEFAULT_GATEWAY == "sandbox" and not SANDBOX_ENABLED:
    raise ImproperlyConfigured("PAYMENTS_DEFAULT_GATEWAY is sandbox but the sandbox is off.")

# Payout accounts are proven by two micro-deposits (README "Payout accounts and
# micro-deposits"): sent through this bank rail, confirmed by the merchant within the window and
# the number of attempts.
PAYOUT_RAIL = env.str("PAYOUT_RAIL", default="sandbox" if SANDBOX_ENABLED else "")
if PAYOUT_RAIL not in ("", "sandbox"):
    raise ImproperlyConfigured(f"PAYOUT_RAIL={PAYOUT_RAIL!r}: the rails known are: sandbox.")
if PAYOUT_RAIL == "sandbox" and not SANDBOX_ENABLED:
    raise ImproperlyConfigured("PAYOUT_RAIL is sandbox but the sandbox is off.")
PAYOUT_VERIFICATION_DAYS = env.int("PAYOUT_VERIFICATION_DAYS", default=10)
PAYOUT_VERIFICATION_ATTEMPTS = env.int("PAYOUT_VERIFICATION_ATTEMPTS", default=3)
if PAYOUT_VERIFICATION_DAYS < 1 or PAYOUT_VERIFICATION_ATTEMPTS < 1:
    raise ImproperlyConfigured(
        "PAYOUT_VERIFICATION_DAYS and PAYOUT_VERIFICATION_ATTEMPTS must be at least 1."
    )

# Webhooks: bodies above this size are refused; Stripe timestamps further than the tolerance
# from now (either direction) are refused; a failing event is tried this many times.
WEBHOOK_MAX_BYTES = env.int("WEBHOOK_MAX_BYTES", default=256 * 1024)
STRIPE_WEBHOOK_TOLERANCE = 300
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=8)
# A merchant whose chargebacks over settled payments in a month pass this is flagged for review.
CHARGEBACK_RATIO_THRESHOLD = env.float("CHARGEBACK_RATIO_THRESHOLD", default=0.009)
CHARGEBACK_DUE_SOON_DAYS = 3
# Refunds above this amount (minor units, whatever the currency) need a second person's approval.
# The threshold counts what a payment has refunded already (pending or succeeded) plus the new
# refund, so splitting one large refund into small ones does not avoid the second person.
REFUND_APPROVAL_THRESHOLD = env.int("REFUND_APPROVAL_THRESHOLD", default=50_000)
# And per merchant and currency, what refunds without approval may add up to in one UTC day.
REFUND_APPROVAL_DAILY_THRESHOLD = env.int("REFUND_APPROVAL_DAILY_THRESHOLD", default=200_000)
APPROVAL_TTL_HOURS = env.int("APPROVAL_TTL_HOURS", default=48)
# Fraud rules (payments/fraud/): an evaluation scoring at least FRAUD_ALERT_SCORE raises an alert
# in the review queue; at least FRAUD_HOLD_SCORE holds a refund for a second person's approval
# and flags the merchant of a payment for review. Scores run 0-100.
FRAUD_ALERT_SCORE = env.int("FRAUD_ALERT_SCORE", default=50)
FRAUD_HOLD_SCORE = env.int("FRAUD_HOLD_SCORE", default=80)
if not 1 <= FRAUD_ALERT_SCORE <= FRAUD_HOLD_SCORE <= 100:
    raise ImproperlyConfigured(
        "FRAUD_ALERT_SCORE and FRAUD_HOLD_SCORE must satisfy 1 <= alert <= hold <= 100."
    )
# Staff behaviour rules (audits/behaviour.py): over STAFF_HISTORY_DAYS of a person's own acts,
# more than max(STAFF_RATE_MIN, STAFF_RATE_FACTOR x the usual daily count) exports, downloads,
# approvals or refunds in 24 hours, or an act in an hour holding less than
# STAFF_UNUSUAL_HOUR_SHARE of the history (once it has STAFF_HISTORY_MIN acts), is unusual.
STAFF_HISTORY_DAYS = env.int("STAFF_HISTORY_DAYS", default=30)
STAFF_RATE_FACTOR = env.float("STAFF_RATE_FACTOR", default=3.0)
STAFF_RATE_MIN = env.int("STAFF_RATE_MIN", default=10)
STAFF_UNUSUAL_HOUR_SHARE = env.float("STAFF_UNUSUAL_HOUR_SHARE", default=0.02)
STAFF_HISTORY_MIN = env.int("STAFF_HISTORY_MIN", default=20)
if STAFF_HISTORY_DAYS < 2 or STAFF_RATE_FACTOR <= 0 or not 0 <= STAFF_UNUSUAL_HOUR_SHARE <= 1:
    raise ImproperlyConfigured(
        "STAFF_HISTORY_DAYS must be at least 2, STAFF_RATE_FACTOR positive and "
        "STAFF_UNUSUAL_HOUR_SHARE between 0 and 1."
    )
# What may need a second person: each app declares its kinds in its own approvals.py.
APPROVAL_KINDS = ["payments.approvals.KINDS", "kyc.approvals.KINDS"]
# What other apps add to a dispute's evidence draft (payments never imports them).
DISPUTE_EVIDENCE_SOURCES = ["kyc.selectors.merchant_verification_for_evidence"]
# How the audit timelines write money (audits never imports payments): format(minor, currency).
AUDIT_MONEY_FORMAT = "payments.core.money.format_minor"

# KYC: turnaround per risk level (hours, the SLA clock), escalation of overdue cases, screening.
KYC_TURNAROUND_HOURS = {
    "low": env.int("KYC_TURNAROUND_HOURS_LOW", default=72),
    "medium": env.int("KYC_TURNAROUND_HOURS_MEDIUM", default=48),
    "high": env.int("KYC_TURNAROUND_HOURS_HIGH", default=24),
}
KYC_ESCALATE_AFTER_OVERDUE_HOURS = env.int("KYC_ESCALATE_AFTER_OVERDUE_HOURS", default=24)
KYC_SCREENING_LIST = Path(
    env.str("KYC_SCREENING_LIST", default=str(BASE_DIR / "kyc/data/screening_list.csv"))
)
KYC_SCREENING_THRESHOLD = env.int("KYC_SCREENING_THRESHOLD", default=85)
KYC_DOCUMENT_MAX_BYTES = env.int("KYC_DOCUMENT_MAX_BYTES", default=10 * 1024 * 1024)
# Request bodies (config.middleware): over the limit is a 413 before parsing; a multipart post to
# an upload view may carry one document plus its form.
REQUEST_BODY_MAX_BYTES = env.int("REQUEST_BODY_MAX_BYTES", default=1024 * 1024)
UPLOAD_BODY_MAX_BYTES = KYC_DOCUMENT_MAX_BYTES + 256 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="backoffice@localhost")

# Celery: with no broker, tasks run in-process (the embedded demo default).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker that is down must not hold a web request for long: publishing gives up quickly and
# the webhook sweep enqueues what could not be sent.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# An unacknowledged task comes back after this long; every retry countdown stays well below it.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE = {
    "webhook-events-sweep": {"task": "payments.tasks.webhook_events_sweep", "schedule": 60.0},
    "chargebacks-daily": {"task": "payments.tasks.chargebacks_daily", "schedule": 24 * 3600.0},
    "approvals-expire": {"task": "payments.tasks.approvals_expire", "schedule": 300.0},
    "kyc-sla": {"task": "kyc.tasks.kyc_sla_sweep", "schedule": 900.0},
    # Ongoing monitoring: every active merchant re-screened against the current list nightly.
    "kyc-rescreen-nightly": {"task": "kyc.tasks.merchants_rescreen", "schedule": 24 * 3600.0},
    "idempotency-purge": {"task": "payments.tasks.idempotency_records_purge", "schedule": 3600.0},
    "reconcile-daily": {"task": "payments.tasks.reconcile_daily", "schedule": 24 * 3600.0},
    # Payout accounts whose micro-deposits were not confirmed in time (confirming checks too).
    "payout-accounts-expire": {
        "task": "payments.tasks.payout_accounts_expire",
        "schedule": 3600.0,
    },
    # The overview's roll-ups: today and yesterday often, the month behind them nightly.
    "payment-rollups": {"task": "payments.tasks.payment_rollups_refresh", "schedule": 300.0},
    # The chain's verification age and result are monitored (/metrics, deploy/prometheus/).
    "audit-chain-verify": {"task": "audits.tasks.audit_chain_verify", "schedule": 24 * 3600.0},
    "staff-disable-inactive": {
        "task": "audits.tasks.staff_disable_inactive",
        "schedule": 24 * 3600.0,
    },
    "audit-checkpoint": {"task": "audits.tasks.audit_checkpoint", "schedule": 3600.0},
    # payment_audits' monthly partitions made ahead (audits/partitions.py).
    "audit-partitions-ensure": {
        "task": "audits.tasks.audit_partitions_ensure",
        "schedule": 24 * 3600.0,
    },
    "payment-rollups-nightly": {
        "task": "payments.tasks.payment_rollups_refresh",
        "schedule": 24 * 3600.0,
        "kwargs": {"days": 35},
    },
}

# Audit trail. django-auditlog is fed by our own receivers (audits.receivers), which share the
# before-state with payment_audits; these only shape what it stores.
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_DISABLE_REMOTE_ADDR = True  # our middleware decides the IP, never auditlog's
# Each PaymentAudit row joins one of this many hash chains (by object), so writers to different
# objects do not wait on one lock. Changing it only affects rows written afterwards.
AUDIT_CHAIN_SHARDS = env.int("AUDIT_CHAIN_SHARDS", default=16)
# Signed checkpoints (audits/checkpoints.py): every hour the chain heads are signed with this
# Ed25519 private key (32 bytes, URL-safe base64) and kept, so that verification can start from
# the last good checkpoint. The public keys verify them, newest first (the signing key's first;
# older ones stay while their checkpoints are needed). Exported files go to a directory the
# database administrator cannot write.
from audits.crypto import signing as _signing  # noqa: E402

AUDIT_CHECKPOINT_SIGNING_KEY = env.str(
    "AUDIT_CHECKPOINT_SIGNING_KEY", default=_signing.dev_signing_key() if DEBUG else ""
)
if not AUDIT_CHECKPOINT_SIGNING_KEY:
    raise ImproperlyConfigured("AUDIT_CHECKPOINT_SIGNING_KEY must be set when DEBUG is off.")
AUDIT_CHECKPOINT_PUBLIC_KEYS = env.list(
    "AUDIT_CHECKPOINT_PUBLIC_KEYS", default=[_signing.public_key_of(AUDIT_CHECKPOINT_SIGNING_KEY)]
)
_signing.check_configuration(AUDIT_CHECKPOINT_SIGNING_KEY, AUDIT_CHECKPOINT_PUBLIC_KEYS)
AUDIT_CHECKPOINT_EXPORT_DIR = env.str("AUDIT_CHECKPOINT_EXPORT_DIR", default="")
DEVICE_ID_COOKIE = "device_id"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "payments.integration.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["payments.integration.parsers.StrictJSONParser"],
    "EXCEPTION_HANDLER": "payments.integration.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}
# API tokens: 24 hours unless the issuer asks for another lifetime, never more than the maximum.
API_TOKEN_DEFAULT_HOURS = env.int("API_TOKEN_DEFAULT_HOURS", default=24)
API_TOKEN_MAX_HOURS = env.int("API_TOKEN_MAX_HOURS", default=24 * 90)
# Rate limits (DRF throttling, counted in the default cache): per token and per client IP.
API_THROTTLE_RATES = {
    "token": env.str("API_RATE_PER_TOKEN", default="600/min"),
    "ip": env.str("API_RATE_PER_IP", default="1200/min"),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Back-office integration API",
    "DESCRIPTION": "Merchants, payments, refunds, chargebacks, KYC cases and the audit trail. "
    "Every error has the shape {type, message, errors}. Send `Authorization: Bearer <token>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Least data: outside DEBUG the schema and docs need a staff sign-in or a token.
    "SERVE_PERMISSIONS": ["payments.integration.permissions.SchemaReader"],
    "SERVE_AUTHENTICATION": [
        "payments.integration.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "MerchantStatusEnum": "payments.models.Merchant.Status",
        "PaymentStatusEnum": "payments.models.Payment.Status",
        "RefundStatusEnum": "payments.models.Refund.Status",
        "ChargebackStatusEnum": "payments.models.Chargeback.Status",
        "ApprovalStatusEnum": "payments.models.ApprovalRequest.Status",
        "KycCaseStatusEnum": "kyc.models.KycCase.Status",
        "KycDocumentReviewStatusEnum": "kyc.models.KycDocument.ReviewStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "payments.integration.schema.add_error_responses",
    ],
}

# /metrics (config/metrics.py): scraped with `Authorization: Bearer <METRICS_TOKEN>`; without a
# token the endpoint is off (403).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Structured logs (config/logs.py): JSON lines with the request id outside DEBUG, plain text in
# development. Celery's worker and beat keep this configuration (config/celery.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use json or plain.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logs.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Sessions (PCI DSS 8.2.8): 15 minutes idle, 12 hours in all, checked by config.sessions
# against times kept in the session (renewed at most once a minute). The database row expires
# after the idle time too, and the cookie when the browser closes.
# PCI DSS 8.2.6: staff accounts unused this long are disabled daily (audits.accounts).
STAFF_INACTIVE_DAYS = env.int("STAFF_INACTIVE_DAYS", default=90)
SESSION_IDLE_SECONDS = env.int("SESSION_IDLE_SECONDS", default=15 * 60)
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", default=12 * 3600)
SESSION_COOKIE_AGE = SESSION_IDLE_SECONDS
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Sign-in lockout (PCI DSS 8.3.4, django-axes): 10 failures for one account, or from one client
# address, lock sign-in for 30 minutes; an administrator can lift it in the console. A wrong
# one-time code counts as a failure like a wrong password (config.signin).
AXES_FAILURE_LIMIT = env.int("SIGNIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SIGNIN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "audits.client.client_ip"  # X-Forwarded-For only from TRUSTED_PROXIES
AXES_LOCKOUT_CALLABLE = "config.signin.lockout_response"
AXES_ENABLE_ADMIN = False  # config.signin_admin shows attempts with an audited unlock instead
AXES_VERBOSE = False

# Content-Security-Policy (django-csp; Django 5.2 has no CSP of its own): scripts only from our
# own static files, never inline. Styles allow inline because the console and Swagger UI set
# style attributes; no script can run from them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes and the scraper talk plain HTTP to the container, not through the TLS proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if env.bool("SECURE_PROXY_SSL", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
