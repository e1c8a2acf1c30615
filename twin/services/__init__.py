"""The reference services: backend, CMS stub, simulated charge points, gateway, Redis.

They play every server role of the protocol document over real sockets; see
``docs/stack.md`` for how they talk to each other.
"""
