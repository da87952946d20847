"""Accounts at the main node: registration, argon2 passwords, lockout, roles."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from services.db import Database
from services.errors import AuthError

HASHER = PasswordHasher()
# A hash to verify against when the user does not exist, so timing does not reveal names.
_DUMMY = HASHER.hash("not-a-real-password-0")

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,31}$")
EMAIL = re.compile(r"^[^@\s<>\"'`;\\]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")
CONTROL = re.compile(r"[\x00-\x1f\x7f<>]")
ROLES = ("developer", "publisher", "admin")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str
    display_name: str
    platform_admin: bool
    roles: tuple[str, ...]  # "developer", "hangzhou:publisher", "hangzhou:admin", ...

    def get_user_id(self) -> int:  # Authlib's user protocol
        return self.id

    @property
    def role_claims(self) -> list[str]:
        return list(self.roles) + (["platform_admin"] if self.platform_admin else [])


def _text(value: Any) -> str:
    """Any JSON value as the text a form would have sent (absent, null, "" and 0: empty)."""
    return str(value or "")


def _rule(ok: Any, message: str) -> AfterValidator:
    def check(value: str) -> str:
        if not ok(value):
            raise PydanticCustomError("registration", message)
        return value

    return AfterValidator(check)


Text = BeforeValidator(_text)
Stripped = BeforeValidator(lambda v: _text(v).strip())


class Registration(BaseModel):
    """A registration's fields, normalised; each rule's message names what the field must be."""

    model_config = ConfigDict(extra="ignore", validate_default=True)

    username: Annotated[str, BeforeValidator(lambda v: _text(v).strip().lower()), _rule(
        USERNAME.match, "3-32 characters: lower-case letters, digits, '.', '_' or '-'")] = ""
    email: Annotated[str, Stripped, _rule(EMAIL.match, "not a valid e-mail address")] = ""
    display_name: Annotated[str, Stripped, _rule(
        lambda v: len(v) <= 64 and not CONTROL.search(v),
        "at most 64 characters, no control characters or < >")] = ""
    password: Annotated[str, Text, _rule(lambda v: 10 <= len(v) <= 256, "10-256 characters")] = ""


def validate_registration(data: dict[str, Any]) -> dict[str, str]:
    """Checked, normalised registration fields; raises AuthError(422) naming the bad fields."""
    try:
        return Registration.model_validate(data).model_dump()
    except ValidationError as exc:
        problems = {str(e["loc"][0]): e["msg"] for e in exc.errors()}
        raise AuthError(422, "Invalid registration", "Some fields are invalid.",
                        fields=problems) from None


def register(db: Database, data: dict[str, Any], via_node: str) -> User:
    """Store a new account (one transaction); AuthError 409 when the name is taken."""
    fields = validate_registration(data)
    pw_hash = HASHER.hash(fields["password"])
    row = db.one("INSERT INTO auth.users (username, email, display_name, password_hash, "
                 "registered_via) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (username) DO NOTHING "
                 "RETURNING id", (fields["username"], fields["email"], fields["display_name"],
                                  pw_hash, via_node))
    if row is None:
        raise AuthError(409, "Username taken", "This username is already registered.")
    user = get(db, row["id"])
    assert user
    return user


def get(db: Database, user_id: int | str) -> User | None:
    row = db.one("SELECT id, username, email, display_name, platform_admin FROM auth.users "
                 "WHERE id = %s AND NOT disabled", (int(user_id),))
    return _user(db, row) if row else None


def by_name(db: Database, username: str) -> User | None:
    row = db.one("SELECT id, username, email, display_name, platform_admin FROM auth.users "
                 "WHERE username = %s AND NOT disabled", (username.strip().lower(),))
    return _user(db, row) if row else None


def _user(db: Database, row: dict[str, Any]) -> User:
    roles = db.all("SELECT node_id, role FROM auth.user_roles WHERE user_id = %s ORDER BY 1, 2",
                   (row["id"],))
    names = tuple(r["role"] if r["node_id"] == "*" else f"{r['node_id']}:{r['role']}"
                  for r in roles)
    return User(row["id"], row["username"], row["email"], row["display_name"],
                row["platform_admin"], names)


def authenticate(db: Database, username: str, password: str, *, threshold: int,
                 lockout_minutes: int) -> User:
    """The user for these credentials; AuthError 401 (bad) or 423 (locked out)."""
    name = (username or "").strip().lower()
    row = db.one("SELECT id, password_hash, locked_until > now() AS locked FROM auth.users "
                 "WHERE username = %s AND NOT disabled", (name,)) if USERNAME.match(name) else None
    if row is None:
        try:
            HASHER.verify(_DUMMY, password or "x")
        except VerificationError:
            pass
        raise AuthError(401, "Login failed", "Unknown user name or wrong password.")
    if row["locked"]:
        raise AuthError(423, "Account locked",
                        "Too many failed logins; try again later.", locked=True)
    try:
        HASHER.verify(row["password_hash"], password or "")
    except (VerificationError, InvalidHashError):
        r = db.one("UPDATE auth.users SET failed_logins = failed_logins + 1, locked_until = "
                   "CASE WHEN failed_logins + 1 >= %s THEN now() + %s * interval '1 minute' "
                   "ELSE locked_until END WHERE id = %s RETURNING failed_logins",
                   (threshold, lockout_minutes, row["id"]))
        if r and r["failed_logins"] >= threshold:
            raise AuthError(423, "Account locked",
                            "Too many failed logins; try again later.", locked=True) from None
        raise AuthError(401, "Login failed", "Unknown user name or wrong password.") from None
    db.execute("UPDATE auth.users SET failed_logins = 0, locked_until = NULL WHERE id = %s",
               (row["id"],))
    user = get(db, row["id"])
    assert user
    return user


def create(db: Database, username: str, password: str, email: str = "",
           *, roles: Sequence[str] = (), platform_admin: bool = False, via: str = "cli") -> User:
    """An account made by an operator (CLI, demo, tests), with roles like `hangzhou:admin`."""
    user = by_name(db, username)
    if user is None:
        user = register(db, {"username": username, "password": password,
                             "email": email or f"{username}@example.invalid"}, via)
    if platform_admin:
        db.execute("UPDATE auth.users SET platform_admin = true WHERE id = %s", (user.id,))
    for role in roles:
        add_role(db, user.id, role)
    out = get(db, user.id)
    assert out
    return out


def add_role(db: Database, user_id: int, role: str) -> None:
    node, _, name = role.rpartition(":")
    if name not in ROLES:
        raise AuthError(422, "Unknown role", f"roles are {', '.join(ROLES)} (per node: node:role)")
    db.execute("INSERT INTO auth.user_roles VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
               (user_id, node or "*", name))


def unlock(db: Database, username: str) -> bool:
    return db.execute("UPDATE auth.users SET failed_logins = 0, locked_until = NULL "
                      "WHERE username = %s", (username.lower(),)) == 1
