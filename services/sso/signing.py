"""Token signing keys of the main node: generated at first start, rotated, published as JWKS.

Keys live in `auth.signing_keys` of the main node's database. Every key not yet retired is in
the JWKS so tokens signed before a rotation still verify. A rotated-in key is published at once
but signs only once it is older than the workers' refresh interval (pre-publication): by then
every worker of the main node answers a JWKS that holds it, so a node that refetches the JWKS on
an unknown `kid` always finds the key of a token it was shown. Until then the previous key signs.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from services.db import Database

ALGORITHMS = ("RS256",)
PUBLISH_MARGIN_SECONDS = 2.0  # beyond the refresh interval before a rotated-in key signs


def create_key(db: Database) -> str:
    """Generate a new RSA signing key, make it the one that signs; returns its kid."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    kid = time.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    public = RSAKey.import_key(private.public_key()).as_dict(private=False)
    jwk = {"kty": "RSA", "key_ops": ["verify"], "n": public["n"], "e": public["e"],
           "kid": kid, "alg": "RS256", "use": "sig"}
    db.execute("INSERT INTO auth.signing_keys (kid, alg, private_pem, public_jwk) "
               "VALUES (%s, 'RS256', %s, %s)", (kid, pem, json.dumps(jwk)))
    return kid


def ensure_key(db: Database) -> None:
    if db.one("SELECT kid FROM auth.signing_keys WHERE active AND retired_at IS NULL") is None:
        create_key(db)


def rotate(db: Database, *, retire_older_than_days: float | None = None) -> str:
    """A new signing key; old keys stay published (verify only) until retired."""
    kid = create_key(db)
    db.execute("UPDATE auth.signing_keys SET active = false WHERE kid <> %s", (kid,))
    if retire_older_than_days is not None:
        db.execute("UPDATE auth.signing_keys SET retired_at = now() WHERE NOT active AND "
                   "retired_at IS NULL AND created_at < now() - %s * interval '1 day'",
                   (retire_older_than_days,))
    return kid


class Signer:
    """Signs JWTs with the current key; re-reads keys every few seconds (rotation by CLI)."""

    REFRESH_SECONDS = 10.0

    def __init__(self, db: Database, refresh_seconds: float = REFRESH_SECONDS):
        self.db, self.refresh_seconds = db, refresh_seconds
        self._lock = threading.Lock()
        self._loaded = 0.0
        self._current: tuple[str, str] | None = None
        self._key: RSAKey | None = None  # the current private key, parsed once per load
        self._jwks: dict[str, Any] = {"keys": []}

    def _load(self) -> None:
        with self._lock:
            if time.monotonic() - self._loaded < self.refresh_seconds and self._current:
                return
            rows = self.db.all(
                "SELECT kid, private_pem, public_jwk, active, "
                "extract(epoch FROM now() - created_at) AS age FROM auth.signing_keys "
                "WHERE retired_at IS NULL ORDER BY created_at DESC")
            signer = self._signing_row(rows)
            current = (signer["kid"], signer["private_pem"])
            if current != self._current:
                self._key = RSAKey.import_key(current[1])
            self._current = current
            self._jwks = {"keys": [r["public_jwk"] for r in rows]}
            self._loaded = time.monotonic()

    def _signing_row(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The newest active key, unless it is still too young to be in every worker's JWKS
        and an older key is there to sign meanwhile (a first key signs at once)."""
        active = [r for r in rows if r["active"]] or rows
        newest = active[0]
        if float(newest["age"]) > self.refresh_seconds + PUBLISH_MARGIN_SECONDS:
            return newest
        older = [r for r in rows if r["kid"] != newest["kid"]
                 and float(r["age"]) > float(newest["age"])]
        return older[0] if older else newest

    @property
    def kid(self) -> str:
        self._load()
        assert self._current
        return self._current[0]

    @property
    def private_pem(self) -> str:
        self._load()
        assert self._current
        return self._current[1]

    def jwks(self) -> dict[str, Any]:
        self._load()
        return self._jwks

    def sign(self, claims: dict[str, Any], typ: str = "JWT") -> str:
        self._load()
        with self._lock:  # kid and key of one load
            assert self._current and self._key
            kid, key = self._current[0], self._key
        return jwt.encode({"alg": "RS256", "kid": kid, "typ": typ}, claims, key,
                          algorithms=list(ALGORITHMS))
