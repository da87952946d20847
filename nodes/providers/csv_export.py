"""CSV output of items (`?f=csv`) that a spreadsheet opens as data, never as formulas.

pygeoapi's own formatter writes attribute text as it is, so `=HYPERLINK(...)` or `@SUM(...)`
runs when the file is opened in Excel or LibreOffice (CSV injection). As OWASP recommends, a
text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`.
Numbers stay numbers: only text is touched, so -3.5 in a numeric column is written as -3.5.
Registered over pygeoapi's `CSV` formatter by `install()` (its plugin registry takes dotted
class paths).
"""

from __future__ import annotations

import csv
import io
import logging

from pygeoapi.formatter.base import FormatterSerializationError
from pygeoapi.formatter.csv_ import CSVFormatter

from layers.csv_cells import neutralise

LOGGER = logging.getLogger(__name__)
DOTTED_PATH = "nodes.providers.csv_export.SafeCSVFormatter"


class SafeCSVFormatter(CSVFormatter):
    """pygeoapi's CSV formatter with formula-looking text neutralised (header row included)."""

    def write(self, options: dict | None = None, data: dict | None = None) -> bytes | str:
        features = (data or {}).get("features") or []
        if not features:
            return ""
        fields = list(features[0]["properties"].keys())
        is_point = bool(self.geom and (features[0].get("geometry") or {}).get("type") == "Point")
        if is_point:
            fields = ["x", "y", *fields]
        output = io.StringIO()
        writer = csv.writer(output)
        writer.writerow([neutralise(f) for f in fields])
        try:
            for feature in features:
                props = dict(feature["properties"])
                if is_point:
                    props["x"], props["y"] = feature["geometry"]["coordinates"][:2]
                unknown = set(props) - set(fields)
                if unknown:  # pygeoapi's DictWriter refuses these too
                    raise ValueError(f"fields not in the first feature: {sorted(unknown)}")
                writer.writerow([neutralise(props.get(f)) for f in fields])
        except (ValueError, TypeError, KeyError) as err:
            LOGGER.error("CSV output: %s", err)
            raise FormatterSerializationError("Error writing CSV output") from None
        return output.getvalue().encode("utf-8")


def install() -> None:
    """Make pygeoapi's `CSV` formatter ours (looked up by name on every `?f=csv`)."""
    from pygeoapi.plugin import PLUGINS

    PLUGINS["formatter"]["CSV"] = DOTTED_PATH
