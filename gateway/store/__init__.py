"""Durable state: the ``Store`` interface (``base``) and its backends.

Owns: picking a backend from the ``[store]`` settings (``open_store``).

Rules: callers get an unopened ``Store``; they ``await store.open()`` and
``await store.close()`` themselves. Importing this package imports no backend.
"""

from __future__ import annotations

from gateway.store.base import DLR_TTL, MessageFilter, Store, StoreError

__all__ = ["DLR_TTL", "MessageFilter", "Store", "StoreError", "open_store"]


def open_store(cfg) -> Store:
    """The store named by ``cfg.backend`` (``"sqlite"`` uses ``cfg.path``), not yet opened."""
    backend = getattr(cfg, "backend", "sqlite")
    if backend == "sqlite":
        from gateway.store.sqlite import SqliteStore

        return SqliteStore(cfg.path)
    if backend == "redis":
        raise NotImplementedError(
            "store backend 'redis' is not implemented yet; use backend = \"sqlite\"")
    raise ValueError(f"unknown store backend {backend!r} (expected 'sqlite' or 'redis')")
