"""The supply routes of a node (issue 18; router factory `SupplyRoutes(...).routes()`, mounted
by nodes/asgi.py under services/access/rules.py SUPPLY):

- `POST /api/supply/changesets`: a child sends a change-set: the gzip NDJSON body
  (`Content-Type: application/vnd.geoplat.changeset+ndjson`, as built by changeset.build) and
  its signed manifest in `Geoplat-Signature` (compact JWS, Ed25519, by the child's key as the
  main node holds it), with a client-credentials token of `node-<child>` from the main node.
  201 with its state in the review queue (`pending`, `conflict`, or `accepted` where the link
  auto-accepts), 200 when the same change-set was received before (nothing changes).
- `GET /api/supply/changesets/{id}`: its state, for the child that sent it and for this node's
  administrators; `GET /api/supply/changesets?state=`: the queue, for administrators.
- `POST /api/supply/changesets/{id}/accept|reject` (`{"reason": ...}`): administrators decide.
- `GET /api/supply`: the links this node sends and receives on, with their state
  (services/supply/status.py), for administrators.

Every refusal is problem+json and changes nothing; decisions are audited.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from geoplat_settings import SupplySection
from layers.catalogue import NodeContext
from services.access.control import AccessControl
from services.errors import AuthError
from services.supply import inbox, status
from services.supply.changeset import ChangeSetError
from services.supply.inbox import SupplyRefused
from services.supply.keys import KeyDirectory, KeyUnavailable
from tiles.errors import ProblemError, problem

LOGGER = logging.getLogger("geoplat.supply")
MEDIA_TYPE = "application/vnd.geoplat.changeset+ndjson"
SIGNATURE_HEADER = "Geoplat-Signature"
CHANGESET_ID = re.compile(r"[0-9a-f]{16,64}")
PRIVATE = {"Cache-Control": "private, no-store"}
MAX_SIGNATURE = 64 * 1024

Handler = Callable[[Request], Awaitable[Response]]


def _api(endpoint: Handler) -> Handler:
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except SupplyRefused as exc:
            return problem(exc.status, "Change-set refused" if exc.status != 404 else "Not Found",
                           exc.message, problems=[p.as_dict() for p in exc.problems][:100])
        except ChangeSetError as exc:
            return problem(400, "Change-set refused", str(exc))
        except KeyUnavailable as exc:
            return problem(503, "Service Unavailable", str(exc), headers={"Retry-After": "30"})
        except (AuthError, ProblemError) as exc:
            return exc.response()
        except Exception:
            LOGGER.exception("supply request failed")
            return problem(500, "Internal Server Error", "The request could not be served.")
    return run


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row, default=str))


class SupplyRoutes:
    def __init__(self, ctx: NodeContext, supply: SupplySection, layers: Sequence[Any],
                 control: AccessControl, main_url: str):
        self.ctx, self.supply, self.control = ctx, supply, control
        self.keys = KeyDirectory(main_url)
        self.links = inbox.LinkCache(ctx, layers, self.keys)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/supply", _api(self.overview), methods=["GET"]),
            Route("/api/supply/changesets", _api(self.changesets), methods=["GET", "POST"]),
            Route("/api/supply/changesets/{changeset_id}", _api(self.one), methods=["GET"]),
            Route("/api/supply/changesets/{changeset_id}/{action}", _api(self.decide),
                  methods=["POST"]),
        ]

    async def _principal(self, request: Request) -> Any:
        p = await self.control.principal(request)
        if p is None:
            raise AuthError(401, "Unauthorized", "Send a bearer token.")
        return p

    async def _admin(self, request: Request) -> Any:
        p = await self._principal(request)
        if not (p.is_user and self.control.is_admin(p)):
            raise AuthError(403, "Forbidden", "Only this node's administrators review supply.")
        return p

    @staticmethod
    def _id(request: Request) -> str:
        cid = request.path_params["changeset_id"]
        if not CHANGESET_ID.fullmatch(cid):
            raise SupplyRefused("no such change-set", status=404)
        return str(cid)

    async def overview(self, request: Request) -> Response:
        await self._admin(request)
        body = await anyio.to_thread.run_sync(lambda: status.node_status(self.ctx, self.supply))
        return JSONResponse(_jsonable(body), headers=PRIVATE)

    async def changesets(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.receive(request)
        await self._admin(request)
        state = request.query_params.get("state") or None
        if state not in (None, "pending", "conflict", "accepted", "rejected"):
            raise SupplyRefused("state is one of pending, conflict, accepted, rejected",
                                status=400)
        rows = await anyio.to_thread.run_sync(lambda: inbox.listing(self.ctx, state))
        return JSONResponse(_jsonable({"changesets": rows}), headers=PRIVATE)

    async def receive(self, request: Request) -> Response:
        p = await self._principal(request)
        client = "" if p.is_user else str(p.client_id or "")
        if not client.startswith("node-"):
            raise AuthError(403, "Forbidden", "Only this node's children send change-sets, "
                                              "with their node's client credentials.")
        child = client[len("node-"):]
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != MEDIA_TYPE:
            raise ProblemError(415, "Unsupported Media Type", f"Send the change-set as {MEDIA_TYPE}.")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature or len(signature) > MAX_SIGNATURE:
            raise SupplyRefused(f"the change-set's signed manifest ({SIGNATURE_HEADER}) is "
                                "missing", status=400)
        layer = inbox.signed_layer(signature)
        found = self.supply.incoming_link(child, layer)
        if found is None:
            raise SupplyRefused(f"this node takes no supply of layer {layer[:64]!r} from "
                                f"{child}", status=403)
        limit = int(found.link.max_mb * 1024 * 1024)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise SupplyRefused(f"the change-set is over this node's limit of "
                                    f"{found.link.max_mb:g} MiB", status=413)
        link = await anyio.to_thread.run_sync(lambda: self.links.get(found))
        seen = await anyio.to_thread.run_sync(lambda: inbox.known(self.ctx, signature))
        row = await anyio.to_thread.run_sync(
            lambda: inbox.receive(self.ctx, link, signature, bytes(body)))
        return JSONResponse(_jsonable(row), status_code=200 if seen else 201, headers=PRIVATE)

    async def one(self, request: Request) -> Response:
        cid = self._id(request)
        p = await self._principal(request)
        row = await anyio.to_thread.run_sync(lambda: inbox.show(self.ctx, cid))
        sender = not p.is_user and p.client_id == f"node-{row['child']}"
        if not (sender or p.is_user and self.control.is_admin(p)):
            raise SupplyRefused("no such change-set", status=404)
        return JSONResponse(_jsonable(row), headers=PRIVATE)

    async def decide(self, request: Request) -> Response:
        cid = self._id(request)
        action = request.path_params["action"]
        if action not in ("accept", "reject"):
            raise SupplyRefused("the action is accept or reject", status=404)
        p = await self._admin(request)
        actor = p.username or p.sub
        raw = await request.body()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            data = None
        if not isinstance(data, dict) or len(raw) > 16384:
            raise SupplyRefused("a JSON object is expected", status=400)
        row = await anyio.to_thread.run_sync(lambda: inbox.show(self.ctx, cid))
        found = self.supply.incoming_link(row["child"], row["layer"])
        if found is None:
            raise SupplyRefused(f"this node no longer takes supply of {row['layer']} from "
                                f"{row['child']}", status=409)
        if action == "accept":
            link = await anyio.to_thread.run_sync(lambda: self.links.get(found))
            out = await anyio.to_thread.run_sync(
                lambda: inbox.accept(self.ctx, link, cid, actor=actor))
        else:
            reason = data.get("reason")
            if not isinstance(reason, str) or not reason.strip():
                raise SupplyRefused("a rejection says why (reason)", status=400)
            out = await anyio.to_thread.run_sync(
                lambda: inbox.reject(self.ctx, cid, actor=actor, reason=reason.strip()))
        return JSONResponse(_jsonable(out), headers=PRIVATE)
