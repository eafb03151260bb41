"""Outbound HTTP from the server: named secrets, the destination allow-list,
the pinned-address client, and signed webhook deliveries.

Depends on the ground floor only (core), so that plugins (the `http` agent)
and the engine (completion notifications) share it.
"""
