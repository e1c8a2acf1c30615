"""``chargetwin check``: the harness against someone else's services, over the wire (:mod:`.suite`)."""
