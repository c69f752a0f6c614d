"""The kernel both apps build on: domain errors, the status machine, money, uploads and the
approvals engine. It imports nothing else of ours but `audits`; `payments` and `kyc` import it.
"""
