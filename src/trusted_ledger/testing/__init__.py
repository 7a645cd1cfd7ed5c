"""Test support that ships with the package, so that tests and operators' soak runs use the
same code: ``testing.sim`` runs a whole consortium in one process from one seed (issue 6).

Nothing here is imported by the node; it sits beside ``node`` in the layering and may use
``consensus``, ``chain`` (certificate digests), ``custody`` (positions and guard rules),
``hashing`` and ``errors`` - never sockets, threads or the wall clock.
"""
