"""Where sign-in leads back to (`next` of /auth/login and /auth/register): a path of this node,
query and fragment included (the portal's view lives in the fragment), and never another site."""

from __future__ import annotations

import pytest

from services.access.routes import DEFAULT_AFTER_LOGIN, MAX_NEXT, local_path

VIEW = "/#c=120.1600000,30.2700000&z=12&g=c&b=vec&lb=1&l=poi:1,roads:0.5"


@pytest.mark.parametrize("value", [
    "/", "/publish?x=1", VIEW, "/?note=abcdefghijklmnopqrstuvwxyz012345#c=120,30&z=9",
    "/" + "a" * (MAX_NEXT - 1)])
def test_paths_of_this_node_are_kept(value: str) -> None:
    assert local_path(value) == value


@pytest.mark.parametrize("value", [
    None, "", "//evil.example/", "/\\evil.example", "http://evil.example/", "https:evil",
    "evil.example/#x", "javascript:alert(1)", "/\x00", "/a\r\nSet-Cookie: x=1", "/\x7f",
    "/\x85", "#c=120,30", "?next=/", "/" + "a" * MAX_NEXT, " /x"])
def test_anything_else_goes_to_the_default(value: str | None) -> None:
    assert local_path(value) == DEFAULT_AFTER_LOGIN
