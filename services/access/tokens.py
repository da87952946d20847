"""Validating access tokens at a node: locally, against the main node's cached JWKS.

No call to the main node per request: keys are cached for `jwks_cache_seconds` and refetched
when a token names an unknown `kid` (key rotation), at most once per few seconds. If the main
node is down, tokens signed by a cached key keep working until they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import RSAKey

from services.errors import AuthError

ALLOWED_ALGS = {"RS256"}
REFETCH_MIN_INTERVAL = 5.0
LEEWAY = 10  # seconds of clock difference allowed for exp, nbf, iat
ACCESS_CLAIMS = ("exp", "iat", "iss", "aud", "sub")


class TokenRefused(Exception):
    """A JWT that does not verify; `expired` when only its lifetime is over."""

    def __init__(self, expired: bool = False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified; TokenRefused if it is malformed."""
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise TokenRefused() from None
    if not isinstance(header, dict):
        raise TokenRefused()
    return dict(header)


def parse_jwks(jwks: dict[str, Any]) -> dict[str, RSAKey]:
    """kid -> RSA public key, for the RSA keys of a JWKS that have a kid."""
    keys = {}
    for jwk in jwks.get("keys", []):
        if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and isinstance(jwk.get("kid"), str):
            keys[jwk["kid"]] = RSAKey.import_key(jwk)
    return keys


def verified_claims(token: str, key: RSAKey, *, issuer: str, audience: str,
                    require: tuple[str, ...], leeway: int = 0) -> dict[str, Any]:
    """The claims of an RS256 JWT signed by `key` for `issuer` and `audience` (both required),
    with every claim of `require` present and exp/nbf/iat within `leeway`; TokenRefused
    otherwise."""
    try:
        claims = jwt.decode(token, key, algorithms=sorted(ALLOWED_ALGS)).claims
        options: dict[str, Any] = {name: {"essential": True} for name in require}
        options["iss"] = {"essential": True, "value": issuer}  # always checked, so always required
        options["aud"] = {"essential": True, "value": audience}
        jwt.JWTClaimsRegistry(leeway=leeway, **options).validate(claims)
    except ExpiredTokenError:
        raise TokenRefused(expired=True) from None
    except (JoseError, ValueError, TypeError):
        raise TokenRefused() from None
    return claims


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (from a token), a client of the federation, or the owner of a
    developer key (`key_id` set, `is_user` False: a key reaches `registered` layers for its
    owner, never a role, a grant or anything a token is needed for)."""

    sub: str
    username: str
    roles: frozenset[str] = field(default_factory=frozenset)
    client_id: str = ""
    is_user: bool = True
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    key_id: str = ""
    public_only: bool = False  # a key that reaches public layers only (services/access/apikeys.py)

    @property
    def via_key(self) -> bool:
        """The caller is known only by a developer key (no token)."""
        return bool(self.key_id) and not self.is_user

    @property
    def platform_admin(self) -> bool:
        return "platform_admin" in self.roles

    def has(self, node_id: str, role: str) -> bool:
        return f"{node_id}:{role}" in self.roles


def invalid(detail: str) -> AuthError:
    return AuthError(401, "Invalid token", detail)


class TokenValidator:
    """Checks signature (RS256 only, keys from JWKS), iss, aud, exp, typ of access tokens."""

    def __init__(self, issuer: str, jwks_url: str, audience: str, http: httpx.AsyncClient,
                 cache_seconds: float = 300, store: Any = None, revocations: Any = None):
        self.issuer, self.jwks_url, self.audience = issuer, jwks_url, audience
        self.http = http  # the app's client
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
                r = await self.http.get(self.jwks_url, timeout=3.0)
                r.raise_for_status()
                jwks = r.json()
                self._keys, self._fetched = self._parse(jwks), now
                if self.store is not None:
                    await anyio.to_thread.run_sync(self.store.save, jwks)
            except (httpx.HTTPError, JoseError, ValueError, KeyError, TypeError):
                # keep what we have: issued tokens keep working while the main node is down
                if not self._keys and self.store is not None:
                    with contextlib.suppress(Exception):  # the database may be down too
                        saved = await anyio.to_thread.run_sync(self.store.load)
                        self._keys = self._parse(saved or {})

    @staticmethod
    def _parse(jwks: dict[str, Any]) -> dict[str, Any]:
        return parse_jwks(jwks)

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
            header = unverified_header(token)
        except TokenRefused:
            raise invalid("The token is malformed.") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGS:
            raise invalid("The token's signing algorithm is not accepted.")
        typ = header.get("typ", "")
        if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
            raise invalid("Not an access token.")
        if not isinstance(kid, str):
            raise invalid("The token names no key.")
        key = await self.key_for(kid)
        if key is None:
            raise invalid("The token was not signed by this federation's issuer.")
        try:
            claims = verified_claims(token, key, issuer=self.issuer, audience=self.audience,
                                     require=ACCESS_CLAIMS, leeway=LEEWAY)
        except TokenRefused as exc:
            if exc.expired:
                raise invalid("The token has expired.") from None
            raise invalid("The token is not valid for this federation.") from None
        roles = claims.get("roles") or []
        return Principal(sub=str(claims["sub"]), username=str(claims.get("preferred_username", "")),
                         roles=frozenset(r for r in roles if isinstance(r, str)),
                         client_id=str(claims.get("client_id", "")),
                         is_user=claims.get("gty") != "client_credentials", claims=claims)
