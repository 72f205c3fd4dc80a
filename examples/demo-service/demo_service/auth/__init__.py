"""Signed tokens for the admin endpoints."""
