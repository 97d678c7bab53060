"""Durable background work on a Postgres queue (``FOR UPDATE SKIP LOCKED``).

``queue`` holds the SQL (claim, complete, fail with backoff, dead letters, retry),
``worker`` the :class:`~memsvc.jobs.worker.Worker` that runs handlers from ``handlers``.
"""
