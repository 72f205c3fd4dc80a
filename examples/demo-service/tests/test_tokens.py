from demo_service.auth.tokens import sign_token, verify_token

KEY = b"test-only-key"


def test_round_trip() -> None:
    token = sign_token("ada", KEY, now=1000)
    assert verify_token(token, KEY, now=1001) == "ada"


def test_expired_or_tampered() -> None:
    token = sign_token("ada", KEY, ttl_s=10, now=1000)
    assert verify_token(token, KEY, now=2000) is None
    assert verify_token(token.replace("ada", "eve"), KEY, now=1001) is None
