"""Fraud signals and rules: a transparent rules engine over payments and refunds.

`models.py` holds the rules (data, versioned), the signals the windows count, the evaluations
with their hits, and the alerts; `checks.py` the fixed catalogue of parametrised checks;
`engine.py` scores a payment or refund in its creating transaction; `services.py` changes
rules and works alerts; `dry_run.py` replays the last 90 days with a changed rule.
"""
