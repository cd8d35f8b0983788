"""The ready queue: queued tasks grouped by what they require of a provider (labels,
prerequisite signatures, runtime conditions and resource requests), each group a heap ordered by job priority
(higher first), then submit order."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator

from jobplane.resources import Resources

# (frozenset of (label, value) pairs, frozenset of prerequisite signature ids, conditions, resources)
Requirement = tuple[frozenset, frozenset, tuple, Resources]
HasAll = Callable[[frozenset], bool]  # whether a provider has every prerequisite in the set
Meets = Callable[[tuple], bool]  # whether a provider's live facts meet every condition
Fits = Callable[[Resources], bool]  # whether a provider has room for a request now
NOTHING = Resources()


def _no_check(_) -> bool:
    return True


class ReadyQueue:
    def __init__(self) -> None:
        self._groups: dict[Requirement, list[tuple[int, int, int, int]]] = {}
        self._queued: dict[int, Requirement] = {}  # task id -> its group
        self._counts: dict[Requirement, int] = {}  # queued tasks per group (the heaps hold stale entries too)

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, task_id: int) -> bool:
        return task_id in self._queued

    def push(self, task_id: int, requires: dict[str, str], priority: int, job_id: int, idx: int,
             prerequisites: frozenset = frozenset(), conditions: tuple = (), resources: Resources = NOTHING) -> None:
        if task_id in self._queued:
            return
        key = (frozenset(requires.items()), prerequisites, conditions, resources)
        self._queued[task_id] = key
        self._counts[key] = self._counts.get(key, 0) + 1
        heapq.heappush(self._groups.setdefault(key, []), (-priority, job_id, idx, task_id))

    def discard(self, task_id: int) -> None:
        """Forget a task (cancelled while queued); its heap entry is skipped lazily."""
        key = self._queued.pop(task_id, None)
        if key is not None:
            self._counts[key] -= 1
            if not self._counts[key]:
                del self._counts[key]

    def pop_for(self, labels: dict[str, str], has: HasAll = _no_check, meets: Meets = _no_check,
                fits: Fits = _no_check) -> int | None:
        """The best queued task whose requirements `labels` (and `has`, `meets`, `fits`) satisfy, or None."""
        key, best = self._best(labels, has, meets, fits)
        if best is None:
            return None
        heapq.heappop(self._groups[key])
        self.discard(best[3])
        return best[3]

    def peek_for(self, labels: dict[str, str], has: HasAll = _no_check, meets: Meets = _no_check,
                fits: Fits = _no_check) -> int | None:
        """The task pop_for would return, left in place."""
        best = self._best(labels, has, meets, fits)[1]
        return None if best is None else best[3]

    def demand(self) -> list[tuple[Requirement, int]]:
        """Each requirement set with queued tasks, and how many: after a dispatch, what no
        provider could take (the provider manager's scale-out signal)."""
        return sorted(self._counts.items(), key=lambda item: (-item[1], sorted(item[0][0])))

    def prerequisite_groups(self) -> Iterator[tuple[frozenset, frozenset]]:
        """(labels, prerequisites) of the groups with prerequisites that still have queued tasks."""
        for key, heap in list(self._groups.items()):
            if key[1] and self._drop_stale(heap):
                yield key[0], key[1]

    def label_sets(self) -> set[frozenset]:
        """The label requirements of the groups that may have queued tasks."""
        return {key[0] for key, heap in self._groups.items() if heap}

    def requiring(self, labels: frozenset) -> Iterator[int]:
        """The queued tasks that require exactly these labels (inactive.py looks at them)."""
        for key, heap in list(self._groups.items()):
            if key[0] == labels:
                yield from (entry[3] for entry in heap if entry[3] in self._queued)

    def _best(self, labels: dict[str, str], has: HasAll, meets: Meets, fits: Fits):
        """(group key, heap entry) of the best matching queued task; stale heads are dropped."""
        best_key, best = None, None
        for key, heap in self._matching(labels, has, meets, fits):
            if self._drop_stale(heap) and (best is None or heap[0] < best):
                best_key, best = key, heap[0]
        return best_key, best

    def _drop_stale(self, heap: list) -> bool:
        """Pop entries of tasks no longer queued off the head; whether a live one is left."""
        while heap and heap[0][3] not in self._queued:
            heapq.heappop(heap)
        return bool(heap)

    def _matching(self, labels: dict[str, str], has: HasAll, meets: Meets, fits: Fits):
        for key, heap in list(self._groups.items()):
            if not heap:
                del self._groups[key]
                continue
            if (all(labels.get(k) == v for k, v in key[0]) and (not key[1] or has(key[1]))
                    and (not key[2] or meets(key[2])) and (not key[3] or fits(key[3]))):
                yield key, heap
