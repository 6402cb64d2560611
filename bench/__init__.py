"""The performance harness of Tollgate: ``python -m bench`` (``make bench``).

It measures the gateway against the provider simulator loaded directly, streamed and not,
at several concurrencies, for each relay client implementation, with the servers and the
load generator pinned to separate cores. See ``bench/README.md`` for the method and the
recorded results, and :mod:`bench.run` for the order of a run.
"""
