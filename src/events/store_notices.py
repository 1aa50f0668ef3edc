"""The store interface's notice operations (coord.events.store: Reader and WriteTx take
them in): the notices projection (coord.projections.notices) as rows of (agent, seq),
and whether each agent acknowledged its notice. Kept beside store.py so each file stays
small; an implementation provides them like the other operations."""

from abc import ABC, abstractmethod

from .records import Notice, Row, TypeFilter


class NoticeReads(ABC):
    @abstractmethod
    def pending_notices(
        self, agent: str, types: TypeFilter | None, limit: int | None
    ) -> list[tuple[Row, Notice]]:
        """Notices for `agent` it has not acknowledged, whose event type matches `types`,
        each with its event, by seq."""

    @abstractmethod
    def notices_of(self, worker: str) -> list[Notice]:
        """Every notice a worker's events gave (acknowledged or not), by seq."""

    def notices_by_worker(self, workers) -> dict[str, list[Notice]]:
        """notices_of each of these workers (one with none may be absent); a store may
        read them all at once (a rebuild)."""
        return {w: self.notices_of(w) for w in workers}


class NoticeWrites(ABC):
    @abstractmethod
    def put_notices(self, rows: list[Notice]) -> None:
        """Add notices; one already there (same agent and seq) keeps its acknowledgement."""

    @abstractmethod
    def drop_notices(self, keys: list[tuple[str, int]]) -> None:
        """Remove the notices (agent, seq) a re-fold no longer derives."""

    @abstractmethod
    def ack_notices(self, agent: str, seqs: list[int] | None = None, through: int | None = None) -> None:
        """`agent` acknowledged these notices (by seq), or every one up to `through`."""
