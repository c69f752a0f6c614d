"""Envelope encryption at rest: key providers, encrypted fields and files, blind indexes,
rotation. See the README, "Encryption at rest"."""
