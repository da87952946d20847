"""Government service maps (issue 15): routing over the node's roads (topology.py, routing.py,
drive.py, routes.py); service items, halls and the cadastral map come later."""
