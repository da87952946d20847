"""The OpenID Connect provider of the main node, on Authlib's server components.

Only the glue is ours: models over `auth.*` tables, a Starlette adapter for Authlib's
request/response, and the JWT access-token generator (RFC 9068 style, RS256, `typ: at+jwt`).
Grants: authorization code (+ PKCE, required for public clients, + OpenID Connect id_token),
refresh token (rotated), client credentials. Endpoints: revocation (RFC 7009).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from authlib.oauth2 import rfc6749
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import RSAKey
from starlette.responses import JSONResponse, RedirectResponse, Response

from services.access.revocations import revoke_token
from services.access.tokens import TokenRefused, parse_jwks, unverified_header, verified_claims
from services.db import Database
from services.sso import accounts
from services.sso.signing import Signer

LOGGER = logging.getLogger("geoplat.auth")
# `forward`: a node's token to its children, beside the key it checked (services/access/forwarding.py)
SCOPES = ["openid", "profile", "email", "geoplat", "offline_access", "register", "keys",
          "forward"]
CODE_TTL = 300


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def transport_policy(issuer: str) -> bool:
    """Set Authlib's transport rule for this process (one node); True when plain http is allowed.

    https issuer: TLS only, whatever the environment says. A loopback http issuer needs no
    exception (Authlib accepts loopback http itself). Any other http issuer is the operator's
    explicit choice in `public_url`: allowed, with a warning.
    """
    parts = urlsplit(issuer)
    if parts.scheme == "https":
        os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        return False
    if loopback(parts.hostname):
        os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        return True
    LOGGER.warning("the main node's public URL %s is plain http: tokens travel unencrypted",
                   issuer)
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    return True


class S256Challenge(CodeChallenge):
    """PKCE with S256 only: `plain` (and a challenge without a method, which means plain)
    is refused at the authorization endpoint."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    CODE_CHALLENGE_METHODS: ClassVar[dict[str, Any]] = {
        "S256": CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_challenge(self, grant: Any, redirect_uri: Any) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and not data.get("code_challenge_method"):
            from authlib.oauth2.rfc6749.errors import InvalidRequestError

            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)


@dataclass
class Client(rfc6749.ClientMixin):
    client_id: str
    secret_hash: str | None
    name: str
    redirect_uris: list[str]
    grant_types: list[str]
    scope: str
    auth_method: str
    node_id: str | None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris  # exact match, never a prefix

    def check_client_secret(self, client_secret: str) -> bool:
        return bool(self.secret_hash) and hmac.compare_digest(
            self.secret_hash or "", hash_secret(client_secret or ""))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode:
    code: str
    client_id: str
    user_id: int
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class RefreshToken:
    token_hash: str
    client_id: str
    user_id: int | None
    scope: str
    expires_at: float
    revoked: bool

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked


@dataclass
class AccessToken:
    """An access token presented for revocation (RFC 7009)."""

    jti: str
    exp: float
    client_id: str

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id


class Provider(rfc6749.AuthorizationServer):
    """Authlib's authorization server over our tables."""

    def __init__(self, db: Database, signer: Signer, issuer: str, audience: str,
                 access_ttl: int, refresh_ttl: int):
        super().__init__(scopes_supported=SCOPES)
        transport_policy(issuer)
        self.db, self.signer, self.issuer, self.audience = db, signer, issuer, audience
        self.access_ttl, self.refresh_ttl = access_ttl, refresh_ttl
        self.register_token_generator("default", self._generate_token)
        provider = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]

            def save_authorization_code(self, code: str, request: Any) -> None:
                data = request.payload.data
                provider.db.execute(
                    "INSERT INTO auth.codes VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                    "now() + %s * interval '1 second')",
                    (code, request.client.client_id, request.user.id, request.payload.redirect_uri,
                     request.scope, data.get("nonce"), data.get("code_challenge"),
                     data.get("code_challenge_method"), int(time.time()), CODE_TTL))

            def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
                row = provider.db.one(
                    "SELECT code, client_id, user_id, redirect_uri, scope, nonce, code_challenge, "
                    "code_challenge_method, auth_time FROM auth.codes WHERE code = %s AND "
                    "client_id = %s AND expires_at > now()", (code, client.client_id))
                return AuthorizationCode(**row) if row else None

            def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
                provider.db.execute("DELETE FROM auth.codes WHERE code = %s",
                                    (authorization_code.code,))

            def authenticate_user(self, authorization_code: AuthorizationCode) -> Any:
                return accounts.get(provider.db, authorization_code.user_id)

        class RefreshGrant(grants.RefreshTokenGrant):
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]
            INCLUDE_NEW_REFRESH_TOKEN = True

            def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
                token = provider.query_refresh(refresh_token)
                return token if token and not token.revoked and not token.is_expired() else None

            def authenticate_user(self, refresh_token: RefreshToken) -> Any:
                return accounts.get(provider.db, refresh_token.user_id) if refresh_token.user_id else None

            def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
                provider.db.execute("UPDATE auth.refresh_tokens SET revoked = true "
                                    "WHERE token_hash = %s", (refresh_token.token_hash,))

        class ClientCredentials(grants.ClientCredentialsGrant):
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post"]

        class Revocation(RevocationEndpoint):
            CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "client_secret_post", "none"]

            def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
                token = None if token_type_hint == "access_token" else \
                    provider.query_refresh(token_string)
                return token or provider.query_access(token_string)

            def revoke_token(self, token: Any, request: Any) -> None:
                if isinstance(token, AccessToken):  # nodes learn it from /sso/revocations

                    revoke_token(provider.db, token.jti, token.exp)
                    return
                provider.db.execute("UPDATE auth.refresh_tokens SET revoked = true "
                                    "WHERE token_hash = %s", (token.token_hash,))

        class IdToken(OpenIDCode):
            def exists_nonce(self, nonce: str, request: Any) -> bool:
                return provider.db.one("SELECT 1 AS x FROM auth.codes WHERE client_id = %s AND "
                                       "nonce = %s", (request.payload.client_id, nonce)) is not None

            def resolve_client_private_key(self, client: Client) -> Any:
                return RSAKey.import_key(provider.signer.private_pem,
                                         {"kid": provider.signer.kid})

            def get_client_algorithm(self, client: Client) -> str:
                return "RS256"

            def get_encode_header(self, client: Client) -> dict:
                return {"alg": "RS256", "kid": provider.signer.kid, "typ": "JWT"}

            def get_client_claims(self, client: Client) -> dict:
                return {"iss": provider.issuer, "aud": [client.client_id],
                        "exp": int(time.time()) + provider.access_ttl}

            def generate_user_info(self, user: accounts.User, scope: str) -> UserInfo:
                return provider.user_info(user, scope)

        self.register_grant(CodeGrant, [S256Challenge(required=False), IdToken(require_nonce=False)])
        self.register_grant(RefreshGrant)
        self.register_grant(ClientCredentials)
        self.register_endpoint(Revocation)
        self._code_grant_cls = CodeGrant

    # --- Authlib hooks -------------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        row = self.db.one("SELECT client_id, secret_hash, name, redirect_uris, grant_types, scope, "
                          "auth_method, node_id FROM auth.clients WHERE client_id = %s",
                          (client_id,))
        return Client(**row) if row else None

    def query_access(self, value: str) -> AccessToken | None:
        """An access token this provider signed (any of its published keys), still unexpired."""
        try:
            key = parse_jwks(self.signer.jwks()).get(str(unverified_header(value).get("kid")))
            if key is None:
                return None
            claims = verified_claims(value, key, issuer=self.issuer, audience=self.audience,
                                     require=("exp", "jti"))
        except TokenRefused:
            return None
        return AccessToken(str(claims["jti"]), float(claims["exp"]), str(claims.get("client_id", "")))

    def query_refresh(self, value: str) -> RefreshToken | None:
        row = self.db.one("SELECT token_hash, client_id, user_id, scope, "
                          "extract(epoch from expires_at)::float8 AS expires_at, revoked "
                          "FROM auth.refresh_tokens WHERE token_hash = %s",
                          (hash_secret(value or ""),))
        return RefreshToken(**row) if row else None

    def save_token(self, token: dict, request: Any) -> None:
        if token.get("refresh_token"):
            user = request.user
            self.db.execute(
                "INSERT INTO auth.refresh_tokens (token_hash, client_id, user_id, scope, expires_at)"
                " VALUES (%s, %s, %s, %s, now() + %s * interval '1 second')",
                (hash_secret(token["refresh_token"]), request.client.client_id,
                 user.id if user else None, token.get("scope", ""), self.refresh_ttl))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def create_oauth2_request(self, request: Any) -> rfc6749.OAuth2Request:
        return request  # already built by `oauth2_request`

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        headers = dict(headers or [])
        if status in (301, 302, 303) and "Location" in headers:
            return RedirectResponse(headers["Location"], status_code=302,
                                    headers={"Cache-Control": "no-store"})
        headers.pop("Content-Type", None)
        return JSONResponse(body, status_code=status, headers=headers)

    def _generate_token(self, grant_type: str, client: Client, user: Any = None,
                        scope: str | None = None, expires_in: int | None = None,
                        include_refresh_token: bool = True) -> dict:
        issued = time.time()
        now, ttl = int(issued), expires_in or self.access_ttl
        # iat_ms, the issue time to the millisecond (rounded down): signing out revokes every
        # token of the user issued until that moment (services/access/revocations.py), and a
        # sign-in in the same second must not be taken for one of them. iat stays an integer:
        # verifiers that compare it to int(now) with no leeway (joserfc, old Authlib) would
        # call a fractional one "issued in the future" for the rest of its second.
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.audience, "iat": now, "nbf": now, "exp": now + ttl,
            "iat_ms": math.floor(issued * 1000),
            "jti": secrets.token_urlsafe(12), "client_id": client.client_id, "scope": scope or "",
            "gty": grant_type,
        }
        if user is not None:
            claims.update(sub=str(user.id), preferred_username=user.username,
                          roles=user.role_claims)
        else:
            claims.update(sub=client.client_id, roles=[])
        token = {"token_type": "Bearer", "access_token": self.signer.sign(claims, typ="at+jwt"),
                 "expires_in": ttl, "scope": scope or ""}
        if include_refresh_token and user is not None and grant_type != "client_credentials":
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def user_info(self, user: accounts.User, scope: str) -> UserInfo:
        info = UserInfo(sub=str(user.id), preferred_username=user.username,
                        name=user.display_name or user.username)
        if "email" in (scope or "").split():
            info["email"] = user.email
        info["roles"] = user.role_claims
        return info

    def metadata(self, base: str) -> dict[str, Any]:
        """OpenID Connect discovery document."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks",
            "revocation_endpoint": f"{base}/revoke",
            "end_session_endpoint": f"{base}/logout",
            "registration_endpoint": f"{base}/api/users",
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post",
                                                      "none"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "preferred_username", "name",
                                 "email", "roles"],
        }


class StarletteOAuth2Payload(rfc6749.OAuth2Payload):
    def __init__(self, data: dict[str, str], datalist: dict[str, list[str]]):
        self._data, self._datalist = data, datalist

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._datalist


class StarletteOAuth2Request(rfc6749.OAuth2Request):
    def __init__(self, method: str, url: str, headers: Any,
                 query: list[tuple[str, str]], form: list[tuple[str, str]]):
        super().__init__(method, url, None, headers)
        datalist: dict[str, list[str]] = {}
        for k, v in [*query, *form]:
            datalist.setdefault(k, []).append(v)
        self._args = dict(query)
        self._form = dict(form)
        self.payload = StarletteOAuth2Payload({k: v[-1] for k, v in datalist.items()}, datalist)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def oauth2_request(request: Any, public_base: str | None = None) -> StarletteOAuth2Request:
    """Read a Starlette request (incl. its form body) into Authlib's request object.

    The URL is the one the caller used, `public_base` (the node's public URL) in front: behind
    a TLS-terminating proxy the app itself sees plain http.
    """
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        f = await request.form()
        form = [(k, v) for k, v in f.multi_items() if isinstance(v, str)]
    url = str(request.url)
    if public_base:
        parts = urlsplit(public_base)
        url = f"{parts.scheme}://{parts.netloc}{request.url.path}" + (
            f"?{request.url.query}" if request.url.query else "")
    return StarletteOAuth2Request(request.method, url, request.headers,
                                  list(request.query_params.multi_items()), form)


def authorize_query(params: dict[str, str]) -> str:
    return urlencode(params)
