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
    """Each requirement set is a group, known by a small number: a task's group is looked up
    several times between its push and its dispatch, and a requirement set's hash is worked out
    anew each time (its Resources' __hash__ is Python code); a number's is not."""

    def __init__(self) -> None:
        self._ids: dict[Requirement, int] = {}  # requirement set -> its group's number
        self._keys: dict[int, Requirement] = {}  # and back
        self._next = 0
        self._groups: dict[int, list[tuple[int, int, int, int]]] = {}
        self._queued: dict[int, int] = {}  # task id -> its group
        self._counts: dict[int, int] = {}  # queued tasks per group (the heaps hold stale entries too)

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, task_id: int) -> bool:
        return task_id in self._queued

    def push(self, task_id: int, requires: dict[str, str], priority: int, job_id: int, idx: int,
             prerequisites: frozenset = frozenset(), conditions: tuple = (), resources: Resources = NOTHING) -> None:
        if task_id in self._queued:
            return
        key = (frozenset(requires.items()), prerequisites, conditions, resources)
        group = self._ids.get(key)
        if group is None:
            group = self._ids[key] = self._next
            self._keys[group] = key
            self._next += 1
        self._queued[task_id] = group
        self._counts[group] = self._counts.get(group, 0) + 1
        heap = self._groups.get(group)
        if heap is None:
            heap = self._groups[group] = []
        heapq.heappush(heap, (-priority, job_id, idx, task_id))

    def discard(self, task_id: int) -> None:
        """Forget a task (cancelled while queued); its heap entry is skipped lazily."""
        group = self._queued.pop(task_id, None)
        if group is not None:
            left = self._counts[group] - 1
            if left:
                self._counts[group] = left
            else:
                del self._counts[group]

    def pop_for(self, labels: dict[str, str], has: HasAll = _no_check, meets: Meets = _no_check,
                fits: Fits = _no_check, job_ok: Callable[[int], bool] | None = None) -> int | None:
        """The best queued task whose requirements `labels` (and `has`, `meets`, `fits`) satisfy, or None;
        None too when `job_ok` says no to that task's job (the next best is not taken instead)."""
        group, best = self._best(labels, has, meets, fits)
        if best is None or (job_ok is not None and not job_ok(best[1])):
            return None
        heapq.heappop(self._groups[group])
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
        return sorted(((self._keys[g], n) for g, n in self._counts.items()),
                      key=lambda item: (-item[1], sorted(item[0][0])))

    def prerequisite_groups(self) -> Iterator[tuple[frozenset, frozenset]]:
        """(labels, prerequisites) of the groups with prerequisites that still have queued tasks."""
        for group, heap in list(self._groups.items()):
            key = self._keys[group]
            if key[1] and self._drop_stale(heap):
                yield key[0], key[1]

    def label_sets(self) -> set[frozenset]:
        """The label requirements of the groups that may have queued tasks."""
        return {self._keys[group][0] for group, heap in self._groups.items() if heap}

    def requiring(self, labels: frozenset) -> Iterator[int]:
        """The queued tasks that require exactly these labels (inactive.py looks at them)."""
        for group, heap in list(self._groups.items()):
            if self._keys[group][0] == labels:
                yield from (entry[3] for entry in heap if entry[3] in self._queued)

    def _best(self, labels: dict[str, str], has: HasAll, meets: Meets, fits: Fits):
        """(group, heap entry) of the best matching queued task; stale heads are dropped."""
        best_group, best = None, None
        for group, heap in self._matching(labels, has, meets, fits):
            if self._drop_stale(heap) and (best is None or heap[0] < best):
                best_group, best = group, heap[0]
        return best_group, best

    def _drop_stale(self, heap: list) -> bool:
        """Pop entries of tasks no longer queued off the head; whether a live one is left."""
        while heap and heap[0][3] not in self._queued:
            heapq.heappop(heap)
        return bool(heap)

    def _matching(self, labels: dict[str, str], has: HasAll, meets: Meets, fits: Fits):
        for group, heap in list(self._groups.items()):
            key = self._keys[group]
            if not heap:  # no task of it is queued (each has its entry until popped): the group goes
                del self._groups[group], self._keys[group], self._ids[key]
                continue
            if (all(labels.get(k) == v for k, v in key[0]) and (not key[1] or has(key[1]))
                    and (not key[2] or meets(key[2])) and (not key[3] or fits(key[3]))):
                yield group, heap
