"""What the places query layer returns: one set of types for the Tianditu-compatible routes and
our own JSON API (services.places.tianditu and services.places.api format them).

Coordinates are lon/lat in EPSG:4490 (CGCS2000; equal to CRS84 order). Division codes are the
6-digit GB/T 2260 code (county and above) or the 9-digit township code (GB/T 10114); Tianditu
forms prefix "156" (`tianditu_code`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# kinds of gazetteer entries, from the coarsest; LEVEL_CN is Tianditu's `level` word
Kind = Literal["country", "province", "city", "county", "township", "road", "address", "poi",
               "place"]
LEVEL_CN: dict[str, str] = {"country": "国家", "province": "省", "city": "城市", "county": "区县",
                            "township": "乡镇", "road": "道路", "address": "门址",
                            "poi": "兴趣点", "place": "地名"}
DIVISION_KINDS = ("province", "city", "county", "township")
# the country: the root of the division tree (`/api/places/admin/中国?children=1` lists the
# provinces, as Tianditu's /v2/administrative answers keyword 156000000 or 中国 at level 5)
COUNTRY_CODE = "000000"
COUNTRY_NAME = "中华人民共和国"
COUNTRY_KEYWORDS = frozenset({"中国", COUNTRY_NAME, COUNTRY_CODE, "100000", "156000000"})


def tianditu_code(code: str | None) -> str | None:
    """`330102` -> `156330102`; a township's 9 digits -> 12 (Tianditu's `town_code`)."""
    return f"156{code}" if code else None


@dataclass(frozen=True)
class AdminChain:
    """The divisions containing a place, names and codes (None where unknown)."""
    province: str | None = None
    province_code: str | None = None
    city: str | None = None
    city_code: str | None = None
    county: str | None = None
    county_code: str | None = None
    township: str | None = None
    township_code: str | None = None


@dataclass(frozen=True)
class Place:
    """One gazetteer entry as a result."""
    id: str                      # stable within its node: "<node>:<gazetteer id>"
    kind: Kind
    name: str
    lon: float
    lat: float
    admin: AdminChain
    address: str | None = None   # the full formatted address (door plates, POIs)
    road: str | None = None
    number: str | None = None    # door number as written ("2号", "12-3号")
    category: str | None = None  # POI category (service_hall, hospital, school, ...)
    phone: str | None = None
    layer: str | None = None     # the layer it was drawn from (access rules apply to it)
    node: str | None = None      # the node that holds it
    score: float | None = None   # 0-100, geocoding and search
    distance_m: float | None = None  # from the query point (nearby search), on the ellipsoid
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Division:
    code: str                    # 6 or 9 digits
    name: str
    kind: Kind                   # province / city / county / township
    parent_code: str | None
    lon: float                   # centre
    lat: float
    bbox: tuple[float, float, float, float] | None
    boundary_wkt: str | None = None          # only when asked for (MULTIPOLYGON)
    boundary_note: str | None = None         # e.g. "1999 county units" where boundaries are old
    parents: tuple[Division, ...] = ()     # from the province down
    children: tuple[Division, ...] = ()    # to the depth asked for


@dataclass(frozen=True)
class Geocoded:
    """Best match of an address or place name (None: nothing above the score floor)."""
    best: Place | None
    level: Kind | None           # the match level of `best` (address, road, poi, township, ...)
    candidates: tuple[Place, ...] = ()
    partial: tuple[str, ...] = ()            # nodes that did not answer within the deadline


@dataclass(frozen=True)
class Reversed:
    lon: float
    lat: float
    formatted_address: str
    admin: AdminChain
    address: Place | None        # nearest door plate within the limit
    road: Place | None
    poi: Place | None
    partial: tuple[str, ...] = ()


@dataclass(frozen=True)
class AreaCount:
    name: str
    code: str
    count: int
    lon: float
    lat: float
    leaf: bool


@dataclass(frozen=True)
class SearchResult:
    places: tuple[Place, ...]
    total: int                   # matches in all (for paging), at least len(places)
    statistics: tuple[AreaCount, ...] = ()   # counts per city/county (statistics queries)
    area: Division | None = None             # the query named a division and nothing else
    partial: tuple[str, ...] = ()
