"""The service registry of a node: records, OGC API Records provider, federation, health (issue 5).

Modules: `settings` (the `registry:` key of a node), `db` (schema `registry`, record upserts,
the outbox), `provider` (pygeoapi record provider, per-caller filtering), `local` (the node's
own services), `external` (harvesting capabilities safely), `federation` (push, apply, full
sync), `health` (probes), `worker` (the one background worker per node), `web` (routes under
`/registry`), `cli` (`geoplat registry ...`).
"""
