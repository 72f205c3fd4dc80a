"""HMAC-signed bearer tokens: `<user>.<expiry>.<signature>`."""

from __future__ import annotations

import hashlib
import hmac
import time


def sign_token(user: str, key: bytes, ttl_s: int = 3600, now: float | None = None) -> str:
    expiry = int((now if now is not None else time.time()) + ttl_s)
    payload = f"{user}.{expiry}"
    signature = hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{signature}"


def verify_token(token: str, key: bytes, now: float | None = None) -> str | None:
    """The user a valid, unexpired token names; None otherwise."""
    try:
        user, expiry, signature = token.rsplit(".", 2)
    except ValueError:
        return None
    expected = hmac.new(key, f"{user}.{expiry}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return None
    if int(expiry) < (now if now is not None else time.time()):
        return None
    return user
