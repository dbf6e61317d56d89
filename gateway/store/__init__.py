"""Durable state: the ``Store`` interface (``base``) and its backends.

Owns: picking a backend from the ``[store]`` settings (``open_store``).

Rules: callers get an unopened ``Store``; they ``await store.open()`` and
``await store.close()`` themselves. Importing this package imports no backend.
"""

from __future__ import annotations

from gateway.store.base import DLR_TTL, MessageFilter, Store, StoreError

__all__ = ["DLR_TTL", "MessageFilter", "Store", "StoreError", "open_store"]


def open_store(cfg) -> Store:
    """The store named by ``cfg.backend`` (``"sqlite"`` uses ``cfg.path``, ``"redis"`` uses
    ``cfg.url``/``password``/``tls``; see ``gateway.store.redis``), not yet opened."""
    backend = getattr(cfg, "backend", "sqlite")
    if backend == "sqlite":
        from gateway.store.sqlite import SqliteStore

        return SqliteStore(cfg.path, writer=getattr(cfg, "writer", "process"))
    if backend == "redis":
        from gateway.store.redis import RedisStore

        return RedisStore(cfg.url or "redis://127.0.0.1:6379/0",
                          password=getattr(cfg, "password", "") or None,
                          tls=bool(getattr(cfg, "tls", False)))
    raise ValueError(f"unknown store backend {backend!r} (expected 'sqlite' or 'redis')")
