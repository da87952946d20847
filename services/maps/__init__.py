"""Government service maps (issue 15): routing over the node's roads (topology.py, routing.py,
drive.py, routes.py) and the service items with the nearest offices (items.py, hours.py,
halls.py, item_routes.py); the cadastral map comes later."""
