"""Data supply between tiers (数据汇交, issue 18): change-sets of a layer from a child node to
its parent (and reference layers down), signed, checked and applied (changeset.py)."""
