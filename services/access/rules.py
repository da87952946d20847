"""Who may call what on a node: the requirement of every route of every route group.

One table per route group, keyed by the route's path as the group declares it; `guard_group`
refuses a route missing here, and tests/test_access_routes.py walks a built node app and fails
on any route or mount without a requirement. nginx's cached-tile fast path is generated from
TILE_SURFACES (services/access/emap.py), so what nginx checks and what the app checks cannot
drift apart. Role kinds repeat the 401/403 details their endpoints always answered.
"""

from __future__ import annotations

from services.access.require import Requirement, require
from services.places.tianditu_shapes import key_refusal

PUBLIC = require("public", note="anyone, no key")
PAGE = require("public-page", note="a page anyone may see; what it does needs more")

NODE = {
    # the portal page for browsers (issue 16, services/web/portal.py: with the demo browser
    # key, what it shows it fetches with the key or the user's token), else the landing JSON
    "/": PAGE,
    "/health": PUBLIC,  # operators and parents probe it without credentials
    # the portal's service-status and catalogue pages (services/web/status_pages.py): what
    # they show they fetch from /registry/api/health and the catalogue's records as the caller
    "/status": PAGE,
    "/catalogue": PAGE,
}

# pygeoapi: features (items), tiles (MVT), records (the catalogue's items), listings, pages
OGC_API = require("ogc-api", layer="path", pages=True,
                  note="per layer: features, tiles (MVT), records; listings without hidden "
                       "layers; pygeoapi's HTML pages need no key; OGC API Processes "
                       "(issue 17): /ogc/processes and /ogc/processes/{id} are listings "
                       "anyone may read, /ogc/processes/{id}/execution and /ogc/jobs/... need "
                       "a signed-in user or a developer key (require.processes_call), a job is "
                       "its creator's (a node admin sees all) and a process reads only the "
                       "layers and attributes its caller may (services/analysis/caller.py)")
OGC = {"/ogc": OGC_API}

# MapProxy: the tile engine names the layers once it has validated the request
TILES = require("tiles", layer="request", note="e-map and published tiles, capabilities")
MAPS = require("maps", layer="request", note="WMS images count against the tiles quota")
TILE_SURFACES = {
    "/wmts": TILES,  # KVP
    "/wmts/{rest:path}": TILES,  # REST and the capabilities document
    "/wms": MAPS,
    "/service": TILES,  # MapProxy's own KVP endpoint (SERVICE=WMS: checked like /wms)
    "/tms": TILES,
    "/tms/{rest:path}": TILES,
    "/{tdt}/wmts": TILES,  # Tianditu: /{layer}_{c|w}/wmts
}

_TOKEN = "Send a bearer token."
_ADMIN_AUDIT = "Only this node's administrators read its audit."
AUTH = {
    "/auth/register": PAGE,
    "/auth/login": PAGE,
    "/auth/callback": PAGE,
    "/auth/logout": PAGE,  # the sign-out POST is CSRF-checked (services/web/guards.py)
    "/auth/me": require("caller", unauthorized=_TOKEN),
    "/auth/check": require("check", note="nginx's subrequest: decides about another request"),
    "/auth/grants": require("user", unauthorized=_TOKEN, forbidden="Grants are for users."),
    "/auth/grants/{grant_id:int}/{action}": require(
        "admin", unauthorized=_TOKEN,
        forbidden="Only this node's administrators decide grants."),
    "/auth/audit": require("admin", unauthorized=_TOKEN, forbidden=_ADMIN_AUDIT),
    "/auth/usage": require("admin", unauthorized=_TOKEN, forbidden=_ADMIN_AUDIT),
}

_OIDC = require("protocol", note="OAuth 2.0 / OIDC: the endpoint authenticates the bearer "
                                 "token (RFC 6750) and checks its scope or roles")
# the endpoint authenticates the OAuth client in the request itself (RFC 6749 2.3, RFC 7009),
# never by a cookie: no CSRF token either (services/web/guards.py)
_CLIENT = require("client", note="the OAuth client authenticates in the request")
SSO = {
    "/sso/.well-known/openid-configuration": PUBLIC,
    "/sso/jwks": PUBLIC,
    "/sso/revocations": PUBLIC,  # ids of revoked tokens, for the nodes' validators
    "/sso/authorize": PAGE,
    "/sso/login": PAGE,
    "/sso/logout": PAGE,
    "/sso/keys": PAGE,  # the developer's key page signs in through the SSO session
    "/sso/token": _CLIENT,
    "/sso/revoke": _CLIENT,
    "/sso/userinfo": _OIDC,
    "/sso/api/users": _OIDC,  # a node's client-credentials token with scope `register`
    "/sso/api/keys": _OIDC,  # a developer's bearer token
    "/sso/api/keys/lookup": _OIDC,  # a node's client-credentials token with scope `keys`
    "/sso/api/keys/{key_id}/revoke": _OIDC,
    "/sso/api/clients": _OIDC,  # an initial access token (RFC 7591 registration of a node)
    "/sso/api/node-key": _OIDC,  # a node's client-credentials token with scope `keys`
    "/sso/api/supply-keys": _OIDC,  # a node registers its supply key (client credentials, keys)
    "/sso/api/supply-keys/{node_id}": PUBLIC,  # a public key: the parents verify with it
}

_SIGN_IN = "Sign in, or send a bearer token."
REGISTRY = {
    "/registry/api/services": require(
        "publisher", unauthorized=_SIGN_IN,
        forbidden="Only this node's administrators and publishers may do this."),
    "/registry/api/services/{record_id}/{action}": require(
        "admin", unauthorized=_SIGN_IN, forbidden="Only this node's administrators may do this."),
    # which node may push what is decided by services/registry/federation.py
    "/registry/api/push": require("caller", unauthorized="Pushes need a node's token."),
    "/registry/api/sync": require("caller", unauthorized="Pushes need a node's token."),
    "/registry/api/health": require("public", note="the push details only for the node's admins"),
}

_PUBLISHER = require("publisher", unauthorized="Sign in as a publisher of this node.",
                     forbidden="Publishing needs the publisher or admin role of node {node}.",
                     challenge=True)
PUBLISHING = {
    "/api/layers": _PUBLISHER,
    "/api/layers/{name}/versions": _PUBLISHER,
    "/api/layers/{name}/rollback": _PUBLISHER,
    "/api/layers/{name}": _PUBLISHER,
    "/publish": PAGE,  # the form; a caller who may not publish gets the sign-in page
}

# place names (issue 13): token or key, the key's `search` quota; results are filtered per layer
# by the query layer (`visible`), so no layer is named here
_SEARCH = require("search", note="geocoding, reverse geocoding, place search, divisions")
_TDT_SEARCH = require("search", refusal=key_refusal,
                      note="Tianditu web services: a refused key answers in Tianditu's JSON")
PLACES = {
    "/geocoder": _TDT_SEARCH,
    "/v2/search": _TDT_SEARCH,
    "/search": _TDT_SEARCH,
    "/v2/administrative": _TDT_SEARCH,
    "/administrative": _TDT_SEARCH,
    "/api/places/geocode": _SEARCH,
    "/api/places/reverse": _SEARCH,
    "/api/places/search": _SEARCH,
    "/api/places/suggest": _SEARCH,
    "/api/places/admin/{code}": _SEARCH,
    "/api/places/openapi": PUBLIC,  # the description of the API, like /ogc/openapi
}

# the JavaScript SDK (issue 14): scripts, declarations and docs anyone may load; the data they
# fetch carries the key (and a browser key is checked against the page's origin there)
SDK = {
    "/sdk": PUBLIC,  # -> /sdk/
    "/sdk/": PAGE,  # the docs, with live examples using the node's demo browser key
    "/sdk/{name:str}": PUBLIC,  # geoplat.js, geoplat.esm.js, geoplat.d.ts
    "/sdk/examples/{name:str}.html": PAGE,
    "/hall": PAGE,  # the service-hall map (issue 15), with the node's demo browser key
    "/cadastre": PAGE,  # the public cadastral map (issue 15), with the demo browser key
    "/api": PUBLIC,  # Tianditu's script URL ?v=4.0&tk=KEY: the key is only written, not checked
}

# routing (issue 15): token or key, counted against the key's `search` quota (Tianditu counts
# its web services, search and routes alike, per key); the network is built only from public
# road layers (services/maps/topology.py), so no layer is named here
_ROUTE = require("search", note="routes over the node's road network")
_TDT_ROUTE = require("search", refusal=key_refusal,
                     note="Tianditu's driving route: a refused key answers in Tianditu's JSON")
ROUTING = {
    "/api/route": _ROUTE,
    "/drive": _TDT_ROUTE,
}

# service items and the nearest offices (issue 15): reads as the routing routes (token or key,
# the `search` quota); replacing the catalogue is a publisher's, as /api/layers
_ITEMS = require("search", note="service items, their offices, the nearest open office")
ITEMS = {
    "/api/items": _ITEMS,
    "/api/items/{code}": _ITEMS,
    "/api/halls/nearest": _ITEMS,
    "/api/items/catalogue": require(
        "publisher", unauthorized="Sign in as a publisher of this node.",
        forbidden="Replacing the service items needs the publisher or admin role of node {node}.",
        challenge=True),
}

# annotations (issue 16): a user's own, by token (the node's cookie or a bearer token), never a
# developer key; another user's id answers 404 (services/annotations/routes.py); a shared one is
# read by anyone holding its unguessable link
_ANNOTATOR = require("user", unauthorized="Sign in to keep annotations.",
                     forbidden="Annotations are kept for signed-in users, not for API keys.")
ANNOTATIONS = {
    "/api/annotations": _ANNOTATOR,
    "/api/annotations/{annotation_id}": _ANNOTATOR,
    "/api/annotations/{annotation_id}/share": _ANNOTATOR,
    "/api/annotations/shared/{token}": require("public", note="anyone holding the share link"),
    "/api/annotations/openapi": PUBLIC,  # the description of the API
}

# data supply between tiers (issue 18, services/supply/routes.py): a child node sends with its
# client-credentials token (the route checks it is a child of this node with that link, and the
# change-set's signature by the child's key); the review is for this node's administrators
_SUPPLY_ADMIN = require("admin", unauthorized="Send a bearer token.",
                        forbidden="Only this node's administrators review supply.")
SUPPLY = {
    "/api/supply": _SUPPLY_ADMIN,
    "/api/supply/changesets": require(
        "caller", unauthorized="Send a bearer token.",
        note="POST: a child node's token and signed change-set; GET: administrators"),
    "/api/supply/changesets/{changeset_id}": require(
        "caller", unauthorized="Send a bearer token.",
        note="the child that sent it, or this node's administrators"),
    "/api/supply/changesets/{changeset_id}/{action}": _SUPPLY_ADMIN,
}

# paths whose caller is an OAuth client authenticating itself: no cookie, so no CSRF token
CLIENT_AUTHENTICATED = frozenset(p for group in (AUTH, SSO) for p, r in group.items()
                                 if r.kind == "client")

GROUPS: dict[str, dict[str, Requirement]] = {
    "node": NODE, "ogc": OGC, "tiles": TILE_SURFACES, "auth": AUTH, "sso": SSO,
    "registry": REGISTRY, "publishing": PUBLISHING, "places": PLACES, "sdk": SDK,
    "routing": ROUTING, "items": ITEMS, "annotations": ANNOTATIONS,
    "supply": SUPPLY}
