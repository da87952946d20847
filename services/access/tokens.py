"""Validating access tokens at a node: locally, against the main node's cached JWKS.

No call to the main node per request: keys are cached for `jwks_cache_seconds` and refetched
when a token names an unknown `kid` (key rotation), at most once per few seconds. If the main
node is down, tokens signed by a cached key keep working until they expire.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import jwt
from jwt.algorithms import RSAAlgorithm

from services.errors import AuthError

ALLOWED_ALGS = {"RS256"}
REFETCH_MIN_INTERVAL = 5.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (from a token) or a client of the federation."""

    sub: str
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    client_id: str = ""
    is_user: bool = True
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def platform_admin(self) -> bool:
        return "platform_admin" in self.roles

    def has(self, node_id: str, role: str) -> bool:
        return f"{node_id}:{role}" in self.roles


def invalid(detail: str) -> AuthError:
    return AuthError(401, "Invalid token", detail)


class TokenValidator:
    """Checks signature (RS256 only, keys from JWKS), iss, aud, exp, typ of access tokens."""

    def __init__(self, issuer: str, jwks_url: str, audience: str, cache_seconds: float = 300,
                 store: Any = None, revocations: Any = None):
        self.issuer, self.jwks_url, self.audience = issuer, jwks_url, audience
        # `revocations` (services.access.revocations.RevocationList): tokens revoked before expiry
        self.revocations = revocations
        self.cache_seconds = cache_seconds
        # `store` (load() -> dict | None, save(dict)) keeps the last JWKS in the node's database,
        # so every worker, and a restarted node, can verify while the main node is down.
        self.store = store
        self._verified: dict[str, Principal] = {}
        self._keys: dict[str, Any] = {}
        self._fetched = 0.0
        self._last_try = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            now = time.monotonic()
            fresh = now - self._fetched < self.cache_seconds
            if (fresh and not force) or now - self._last_try < REFETCH_MIN_INTERVAL:
                return
            self._last_try = now
            try:
                async with httpx.AsyncClient(timeout=3.0) as client:
                    r = await client.get(self.jwks_url)
                    r.raise_for_status()
                    jwks = r.json()
                self._keys, self._fetched = self._parse(jwks), now
                if self.store is not None:
                    await anyio.to_thread.run_sync(self.store.save, jwks)
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                # keep what we have: issued tokens keep working while the main node is down
                if not self._keys and self.store is not None:
                    try:
                        saved = await anyio.to_thread.run_sync(self.store.load)
                        self._keys = self._parse(saved or {})
                    except Exception:  # noqa: BLE001 - the database may be down too
                        pass

    @staticmethod
    def _parse(jwks: dict[str, Any]) -> dict[str, Any]:
        keys = {}
        for jwk in jwks.get("keys", []):
            if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and isinstance(jwk.get("kid"), str):
                keys[jwk["kid"]] = RSAAlgorithm.from_jwk(jwk)
        return keys

    async def key_for(self, kid: str) -> Any:
        if not self._keys or time.monotonic() - self._fetched > self.cache_seconds:
            await self._refresh(force=False)
        if kid not in self._keys:
            await self._refresh(force=True)
        return self._keys.get(kid)

    async def validate(self, token: str) -> Principal:
        """The principal of a valid access token; AuthError 401 otherwise.

        A verified token is remembered until it expires (signature checks cost ~0.1-1 ms).
        """
        if self.revocations is not None and not await self.revocations.fresh():
            raise AuthError(503, "Service Unavailable",
                            "Tokens cannot be checked against the main node's revocations just "
                            "now; try again later.")
        hit = self._verified.get(token)
        if hit is not None and hit.claims["exp"] <= time.time():
            self._verified.pop(token, None)
            hit = None
        principal = hit or await self._verify(token)
        if self.revocations is not None and self.revocations.covers(principal.claims):
            self._verified.pop(token, None)
            raise invalid("The token has been revoked.")
        if hit is not None:
            return hit
        if len(self._verified) >= 10000:
            self._verified.clear()
        self._verified[token] = principal
        return principal

    async def _verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid("The token is malformed.") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGS:
            raise invalid("The token's signing algorithm is not accepted.")
        if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise invalid("Not an access token.")
        if not isinstance(kid, str):
            raise invalid("The token names no key.")
        key = await self.key_for(kid)
        if key is None:
            raise invalid("The token was not signed by this federation's issuer.")
        try:
            claims = jwt.decode(token, key, algorithms=sorted(ALLOWED_ALGS), audience=self.audience,
                                issuer=self.issuer, leeway=10,
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise invalid("The token has expired.") from None
        except jwt.PyJWTError:
            raise invalid("The token is not valid for this federation.") from None
        roles = claims.get("roles") or []
        return Principal(sub=str(claims["sub"]), username=str(claims.get("preferred_username", "")),
                         roles=frozenset(r for r in roles if isinstance(r, str)),
                         client_id=str(claims.get("client_id", "")),
                         is_user=claims.get("gty") != "client_credentials", claims=claims)
