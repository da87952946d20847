"""Every settings model of geoplat, in one base package every other package may import.

It imports nothing of ours: `nodes` loads these models from YAML (nodes/settings.py) and
builds a node's `NodeRuntime` (nodes/build.py); `layers`, `tiles` and `services` type their
settings with them.
"""

from geoplat_settings.analysis import AnalysisSettings
from geoplat_settings.auth import NodeAuth
from geoplat_settings.cadastre import CadastreSettings
from geoplat_settings.federation import (
    PROJECT_ROOT,
    AccessLevel,
    Extent,
    FederationSettings,
    GeometryType,
    Identifier,
    LayerFile,
    LayerSettings,
    ManagedPostgres,
    NodeSettings,
    ScaleRange,
    Tier,
)
from geoplat_settings.halls import HallsSettings
from geoplat_settings.places import PlacesKind, PlacesMapping
from geoplat_settings.publish import PublishSettings
from geoplat_settings.registry import EMAP_LAYERS, Composition, CompositionPart, RegistrySettings
from geoplat_settings.routing import RoutingMapping
from geoplat_settings.runtime import (
    RUNTIME_FILE,
    AuthSection,
    CompositionRef,
    DatabaseSection,
    NodeRef,
    NodeRuntime,
    NodeView,
    Providers,
    RegistrySection,
    ServerSection,
)
from geoplat_settings.supply import (
    Generalise,
    ReferenceLink,
    SupplyIn,
    SupplyLink,
    SupplyOut,
    SupplySection,
)
from geoplat_settings.tiles import TileCache

__all__ = [
    "EMAP_LAYERS",
    "PROJECT_ROOT",
    "RUNTIME_FILE",
    "AccessLevel",
    "AnalysisSettings",
    "AuthSection",
    "CadastreSettings",
    "Composition",
    "CompositionPart",
    "CompositionRef",
    "DatabaseSection",
    "Extent",
    "FederationSettings",
    "Generalise",
    "GeometryType",
    "HallsSettings",
    "Identifier",
    "LayerFile",
    "LayerSettings",
    "ManagedPostgres",
    "NodeAuth",
    "NodeRef",
    "NodeRuntime",
    "NodeSettings",
    "NodeView",
    "PlacesKind",
    "PlacesMapping",
    "Providers",
    "PublishSettings",
    "ReferenceLink",
    "RegistrySection",
    "RegistrySettings",
    "RoutingMapping",
    "ScaleRange",
    "ServerSection",
    "SupplyIn",
    "SupplyLink",
    "SupplyOut",
    "SupplySection",
    "Tier",
    "TileCache",
]
