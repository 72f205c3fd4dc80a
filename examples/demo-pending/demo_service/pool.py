"""A bounded pool of upstream connections."""

from __future__ import annotations

from dataclasses import dataclass, field


class PoolExhausted(RuntimeError):
    """Every connection is in use."""


@dataclass
class Connection:
    ident: int
    closed: bool = False

    def fetch(self, cursor: int, upstream: object) -> list[dict[str, object]]:
        return upstream.fetch(cursor)  # type: ignore[attr-defined,no-any-return]


@dataclass
class ConnectionPool:
    size: int = 4
    _free: list[Connection] = field(default_factory=list)
    _busy: set[int] = field(default_factory=set)
    _next_id: int = 0

    def acquire(self) -> Connection:
        if self._free:
            conn = self._free.pop()
        elif len(self._busy) < self.size:
            self._next_id += 1
            conn = Connection(self._next_id)
        else:
            raise PoolExhausted(f"all {self.size} connections are in use")
        self._busy.add(conn.ident)
        return conn

    @property
    def in_use(self) -> int:
        """Connections handed out and not yet released."""
        return len(self._busy)

    def release(self, conn: Connection) -> None:
        self._busy.discard(conn.ident)
        if not conn.closed:
            self._free.append(conn)
