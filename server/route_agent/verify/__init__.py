"""Verification: checks, report parsers, tamper checks and the verifier lane."""
