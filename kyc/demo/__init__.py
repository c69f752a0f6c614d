"""The demo data `manage.py seed_demo` loads: staff (two per role), merchants and KYC cases in
every state (onboarding.py), and 90 days of payments, refunds and disputes on the sandbox
gateway (history.py). It lives in kyc, the one app that may see both apps."""
