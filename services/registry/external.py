"""External services: reading capabilities safely (SSRF guard) and filling a record from them.

The fetcher checks the URL's form (no userinfo, no odd IPv4 spellings), resolves the host itself
and refuses every address that is not globally reachable unicast (loopback, private, shared
100.64/10, link-local, multicast, reserved, documentation, and IPv6 forms wrapping any of these:
mapped, compatible, NAT64, 6to4, Teredo) unless it lies in the node's `registry.allow_networks`;
it then connects to the address it checked (no second DNS answer can swap it). Redirects are
followed by hand, each hop checked again; only http/https. Connect/read timeouts, a total
deadline, and a size cap applied while streaming.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

import httpx

from geoplat_settings import RegistrySettings
from services.registry.errors import RegistryError

USER_AGENT = "geoplat-registry/1.0"


class HarvestError(RegistryError):
    """A capabilities URL we refuse or cannot read: 400 (or 422) with a safe message."""

    def __init__(self, detail: str, status: int = 400, title: str = "Bad service URL"):
        super().__init__(status, title, detail)


@dataclass
class Fetched:
    url: str
    status: int
    content_type: str
    body: bytes
    elapsed_ms: float


Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (RFC 6052 NAT64, RFC 8215
# local-use NAT64); IPv4-mapped, IPv4-compatible, 6to4 and Teredo are handled by name below.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_V4COMPAT = ipaddress.IPv6Network("::/96")
_REFUSED = ("The URL points to an address this node does not contact (loopback, private, "
            "shared, link-local, multicast, reserved or otherwise not public).")


class BadURL(HarvestError):
    """A URL that is not a well-formed http(s) URL (the CLI exits 2 for these)."""


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address wraps (mapped, compatible, NAT64, 6to4, Teredo)."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _V4COMPAT and int(ip) > 1:  # ::a.b.c.d (deprecated, still routed by some stacks)
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if any(ip in net for net in _NAT64):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:  # (server, client); the client address is stored XOR-ed
        found.extend(ip.teredo)
    return found


def address_allowed(ip: Address, allowed: list[Network]) -> bool:
    """Only globally reachable unicast addresses, and those of `registry.allow_networks`.

    An IPv6 address that wraps an IPv4 one is allowed only if both are.
    """
    if any(ip in net for net in allowed if net.version == ip.version):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner:
            return all(address_allowed(v4, allowed) for v4 in inner) and not (
                ip.ipv4_mapped is None and not _public(ip))
    return _public(ip)


def _public(ip: Address) -> bool:
    # is_global alone lets multicast through (224.0.0.0/4 and ff00::/8 count as global)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback
                                 or ip.is_link_local or ip.is_unspecified)


def _numeric_host(host: str) -> bool:
    """A host whose last label is a number: an IPv4 address in some spelling (WHATWG URL)."""
    last = host.rstrip(".").rsplit(".", 1)[-1].lower()
    if not last:
        return False
    if last.startswith("0x"):
        return all(c in "0123456789abcdef" for c in last[2:])
    return last.isdigit()


def check_url(url: Any) -> tuple[SplitResult, str, int]:
    """(parts, host, port) of a well-formed http(s) URL; BadURL with a one-line reason otherwise."""
    if not isinstance(url, str) or not url.strip():
        raise BadURL("A service URL is required.")
    if len(url) > 2000:
        raise BadURL("The URL is longer than 2000 characters.")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise BadURL("The URL contains spaces or control characters.")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. http://[::1/ (an unclosed IPv6 bracket)
        raise BadURL("The URL is not a valid http(s) URL (its host cannot be read).") from None
    try:
        port_given = parts.port
    except ValueError:
        raise BadURL("The URL's port is not valid.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadURL("Only http and https URLs can be registered.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise BadURL("URLs with a user name or password are not accepted.")
    host = parts.hostname or ""
    if not host:
        raise BadURL("The URL has no host.")
    if parts.netloc.endswith(":") or (port_given is not None and not 0 < port_given < 65536):
        raise BadURL("The URL's port is not valid.")
    if "[" in parts.netloc and parts.netloc.split("]", 1)[1][:1] not in ("", ":"):
        raise BadURL("The URL is not a valid http(s) URL (its host cannot be read).")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise BadURL("The URL's IPv6 address is not valid.") from None
        if "%" in host:
            raise BadURL("IPv6 zone identifiers are not accepted.")
    elif _numeric_host(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            # 2130706433, 0x7f.1, 017700000001, 127.1, 0: resolvers read them as addresses
            raise BadURL("An IPv4 address must be written as four decimal numbers "
                         "(a.b.c.d).") from None
    scheme = parts.scheme.lower()
    return parts, host, port_given or (443 if scheme == "https" else 80)


def resolve_checked(url: str, cfg: RegistrySettings) -> tuple[str, str]:
    """(host, checked IP) for an http(s) URL; HarvestError if the URL or an address is refused.

    Every address the name resolves to must pass; the caller connects to the one returned.
    """
    _parts, host, port = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise HarvestError("The URL's host name does not resolve.") from None
    allowed: list[Network] = [ipaddress.ip_network(n, strict=False) for n in cfg.allow_networks]
    ips = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address_allowed(ip, allowed):
            raise HarvestError(_REFUSED)
        ips.append(str(ip))
    if not ips:
        raise HarvestError("The URL's host name does not resolve.")
    return host, ips[0]


def guarded_client(timeout: httpx.Timeout | float = 5.0) -> httpx.Client:
    """An HTTP client for `safe_get`: nothing from the environment (no proxies), redirects not
    followed by httpx (safe_get follows them by hand, checking every hop)."""
    return httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)


def safe_get(url: str, cfg: RegistrySettings, *, accept: str = "*/*",
             http: httpx.Client | None = None) -> Fetched:
    """GET `url` under the SSRF rules; HarvestError on refusal, timeout, oversize or bad status.

    `http`: the caller's client from `guarded_client()` (the registry worker shares one);
    without it, one for this call.
    """
    if http is None:
        with guarded_client() as own:
            return safe_get(url, cfg, accept=accept, http=own)
    started = time.monotonic()
    deadline = started + cfg.fetch_timeout * 2
    timeout = httpx.Timeout(cfg.fetch_timeout, connect=min(cfg.fetch_timeout, 5.0))
    current = url
    for _hop in range(cfg.max_redirects + 1):
        host, ip = resolve_checked(current, cfg)
        parts = urlsplit(current)
        netloc_ip = f"[{ip}]" if ":" in ip else ip
        if parts.port:
            netloc_ip += f":{parts.port}"
        pinned = urlunsplit((parts.scheme, netloc_ip, parts.path or "/", parts.query, ""))
        headers = {"Host": parts.netloc, "User-Agent": USER_AGENT,
                   "Accept": accept}
        ext = {"sni_hostname": host} if parts.scheme == "https" else {}
        try:
            with http.stream("GET", pinned, headers=headers, extensions=ext, timeout=timeout,
                             follow_redirects=False) as r:
                if r.status_code in (301, 302, 303, 307, 308):
                    location = r.headers.get("location")
                    if not location:
                        raise HarvestError("The service answered a redirect without a target.")
                    try:
                        current = urljoin(current, location)
                    except ValueError:
                        raise HarvestError("The service redirected to a malformed URL.") \
                            from None
                    continue
                declared = r.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > cfg.max_document_bytes:
                    raise HarvestError("The capabilities document is too large.", 413,
                                       "Document too large")
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > cfg.max_document_bytes:
                        raise HarvestError("The capabilities document is too large.", 413,
                                           "Document too large")
                    if time.monotonic() > deadline:
                        raise HarvestError("The service did not answer in time.", 504,
                                           "Service timeout")
                    chunks.append(chunk)
                return Fetched(current, r.status_code, r.headers.get("content-type", ""),
                               b"".join(chunks), (time.monotonic() - started) * 1000)
        except httpx.TimeoutException:
            raise HarvestError("The service did not answer in time.", 504,
                               "Service timeout") from None
        except httpx.RemoteProtocolError as exc:
            # httpx parses a redirect's Location even when not following it, and refuses
            # what it cannot read (e.g. http://0177.0.0.1/): that is the service's bad URL
            if "location header" in str(exc).lower():
                raise BadURL("The service redirected to a malformed URL.") from None
            raise HarvestError("The service could not be reached.", 502,
                               "Service unreachable") from None
        except httpx.HTTPError:
            raise HarvestError("The service could not be reached.", 502,
                               "Service unreachable") from None
    raise HarvestError("Too many redirects.")


# --- reading capabilities -------------------------------------------------------------------

def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _union(boxes: list[list[float]]) -> list[float] | None:
    good = [b for b in boxes if b and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)]
    if not good:
        return None
    box = [min(b[0] for b in good), min(b[1] for b in good), max(b[2] for b in good),
           max(b[3] for b in good)]
    box = [max(-180.0, box[0]), max(-90.0, box[1]), min(180.0, box[2]), min(90.0, box[3])]
    return box if box[0] < box[2] and box[1] < box[3] else None


def _ows_summary(kind: str, service: Any, layers: list[tuple[str, Any]]) -> dict[str, Any]:
    """Record fields from an OWSLib WMS/WMTS capabilities object."""
    ident = service.identification
    return {"type": kind, "title": ident.title or kind, "description": ident.abstract or "",
            "keywords": [k for k in (ident.keywords or []) if k][:30],
            "bbox": _union([list(lay.boundingBoxWGS84) for _, lay in layers
                            if getattr(lay, "boundingBoxWGS84", None)]),
            "layers": [name for name, _ in layers][:200]}


def _from_xml(url: str, body: bytes, wanted: str | None) -> dict[str, Any]:
    from lxml import etree

    if b"<!ENTITY" in body[:65536] or b"<!DOCTYPE" in body[:65536] and b"SYSTEM" in body[:65536]:
        raise HarvestError("Documents with entity declarations are not accepted.")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        raise HarvestError("The URL did not answer a service capabilities document.") from None
    name = _local_name(root.tag)
    if name in ("WMS_Capabilities", "WMT_MS_Capabilities"):
        from owslib.wms import WebMapService

        try:
            wms = WebMapService(url, xml=body, version=root.get("version") or "1.3.0")
        except Exception:  # noqa: BLE001 - a broken document from a third party
            raise HarvestError("The WMS capabilities document could not be read.") from None
        return _ows_summary("WMS", wms, [(lay.name, lay) for lay in wms.contents.values()])
    if name == "Capabilities" and "wmts" in (root.nsmap.get(None) or ""):
        from owslib.wmts import WebMapTileService

        try:
            wmts = WebMapTileService(url, xml=body)
        except Exception:  # noqa: BLE001
            raise HarvestError("The WMTS capabilities document could not be read.") from None
        return _ows_summary("WMTS", wmts, [(lay.id, lay) for lay in wmts.contents.values()])
    raise HarvestError("The URL did not answer a WMS or WMTS capabilities document.")


def _from_json(url: str, doc: Any, cfg: RegistrySettings, wanted: str | None,
               http: httpx.Client | None = None) -> dict[str, Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("links"), list):
        raise HarvestError("The URL did not answer an OGC API document.")
    title = str(doc.get("title") or "OGC API")
    description = str(doc.get("description") or "")
    keywords = [str(k) for k in doc.get("keywords") or [] if isinstance(k, str)][:30]
    item_type = str(doc.get("itemType") or "")
    if "extent" in doc or item_type:  # a collection
        stype = {"record": "OGCAPI-Records"}.get(item_type, "OGCAPI-Features")
        if wanted == "OGCAPI-Tiles":
            stype = wanted
        bbox = ((doc.get("extent") or {}).get("spatial") or {}).get("bbox")
        if bbox and isinstance(bbox[0], list):
            bbox = bbox[0]
        return {"type": stype, "title": title, "description": description, "keywords": keywords,
                "bbox": _union([bbox]) if bbox else None}
    rels = {str(link.get("rel")): link.get("href") for link in doc["links"]
            if isinstance(link, dict)}
    if not ({"conformance", "data", "http://www.opengis.net/def/rel/ogc/1.0/conformance"}
            & set(rels)):
        raise HarvestError("The URL did not answer an OGC API landing page.")
    conf_href = rels.get("conformance") or rels.get(
        "http://www.opengis.net/def/rel/ogc/1.0/conformance")
    classes: list[str] = []
    if conf_href:
        try:
            got = safe_get(urljoin(url, conf_href), cfg, accept="application/json", http=http)
            classes = [str(c) for c in json.loads(got.body).get("conformsTo", [])]
        except (HarvestError, ValueError, AttributeError, TypeError):
            classes = []
    found = [t for t, key in (("OGCAPI-Features", "ogcapi-features"),
                              ("OGCAPI-Records", "ogcapi-records"),
                              ("OGCAPI-Tiles", "ogcapi-tiles")) if any(key in c for c in classes)]
    if wanted:
        if found and wanted not in found:
            raise HarvestError(f"The service does not conform to {wanted}.")
        stype = wanted
    else:
        stype = found[0] if found else "OGCAPI-Features"
    return {"type": stype, "title": title, "description": description, "keywords": keywords,
            "bbox": None}


def harvest(url: str, cfg: RegistrySettings, wanted: str | None = None, *,
            http: httpx.Client | None = None) -> dict[str, Any]:
    """Read the service at `url` and describe it: type, title, description, keywords, bbox.

    `http`: the caller's client from `guarded_client()`; without it, one for this harvest.
    """
    if http is None:
        with guarded_client() as own:
            return harvest(url, cfg, wanted, http=own)
    if wanted in ("WMS", "WMTS") and "request=" not in url.lower() and not url.lower().endswith(
            ".xml"):
        sep = "&" if "?" in url else "?"
        url = f"{url}{sep}SERVICE={wanted}&REQUEST=GetCapabilities"
    got = safe_get(url, cfg, accept="application/json, application/xml, text/xml", http=http)
    if got.status >= 400:
        raise HarvestError(f"The service answered HTTP {got.status}.", 422,
                           "Not a usable service")
    body = got.body.lstrip()
    if body.startswith(b"<"):
        info = _from_xml(url, body, wanted)
    else:
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise HarvestError("The URL did not answer a service capabilities document.") from None
        try:
            info = _from_json(got.url, doc, cfg, wanted, http)
        except (TypeError, KeyError, AttributeError, IndexError):  # a hostile document's shape
            raise HarvestError("The OGC API document could not be read.") from None
    if wanted and wanted != info["type"] and info["type"] in ("WMS", "WMTS"):
        raise HarvestError(f"The URL answered a {info['type']} document, not {wanted}.")
    info["url"] = url
    info["latency_ms"] = round(got.elapsed_ms, 1)
    return info


def new_record(node_id: str, path: str, info: dict[str, Any], *,
               title: str | None = None, description: str | None = None,
               keywords: list[str] | None = None, access: str = "public",
               submitted_by: str = "") -> dict[str, Any]:
    """A pending record for an external service of this node's area."""
    return {"id": f"{node_id}:ext:{uuid.uuid4().hex[:12]}", "origin_node": node_id,
            "origin_path": path, "type": info["type"], "url": info["url"],
            "title": (title or info["title"])[:300],
            "description": (description if description is not None else info["description"])[:4000],
            "keywords": list(keywords if keywords is not None else info["keywords"])[:30],
            "bbox": info.get("bbox"), "scale": None, "access": access, "layer_id": None,
            "status": "pending", "version": 1, "health": "up",
            "latency_ms": info.get("latency_ms"), "submitted_by": submitted_by}
