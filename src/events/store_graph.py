"""The store interface's work-graph operations (part of coord.events.store: Reader and
WriteTx inherit these). The store keeps what the projector computes beside each view
(`ready`, `waiting`, `priority`: coord.events.records.ViewRow) and a dependency index
(worker waits for after) with its reverse; it never decides what is ready."""

from abc import ABC, abstractmethod

from .records import ViewRow


class GraphReader(ABC):
    @abstractmethod
    def ready_views(self, assignable_by: str | None = None, limit: int | None = None) -> list[ViewRow]:
        """The ready queue: views whose `ready` column is set (without an assignee or
        assigned to `assignable_by`), by (priority, created, worker); an indexed read
        whose cost does not grow with the number of workers."""

    @abstractmethod
    def states(self, workers) -> dict[str, str]:
        """The state column of these workers (an unknown one is absent)."""

    @abstractmethod
    def dependents(self, worker: str) -> list[str]:
        """The workers that wait for `worker` (the dependency index, reversed), sorted."""

    @abstractmethod
    def reaches(self, src: str, dst: str) -> bool:
        """Whether dst can be reached from src following the dependency index (src waits
        for x, x waits for … dst): the cycle check. Terminates on a stored cycle."""


class GraphWriter(ABC):
    @abstractmethod
    def set_deps(self, worker: str, after) -> None:
        """The workers `worker` waits for, replacing what the dependency index held
        (`delete_view` and `replace_views` empty it for the views they remove)."""

    def add_deps(self, deps: dict) -> None:
        """set_deps of each worker → after list, into an index replace_views just emptied
        (a rebuild): one write where the store can."""
        for worker, after in deps.items():
            self.set_deps(worker, after)

    @abstractmethod
    def set_graph_columns(self, worker: str, ready: bool, waiting: int) -> None:
        """A view's readiness columns only (a dependency changed state, not the view)."""
