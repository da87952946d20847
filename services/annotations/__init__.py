"""Annotations (在线标注, issue 16): a signed-in user's points, lines and polygons with a title and
a note, kept at the node they were drawn on, private unless shared by link (routes.py)."""
