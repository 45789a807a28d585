"""Progress reports as a tree: a group's parent sums its children, as in the original."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jobcontrol.models import ProgressItem


@dataclass
class ProgressNode:
    """One group of the tree; ``current``/``total`` include the children's sums."""

    group: tuple[str, ...]
    current: float = 0.0
    total: float | None = None
    message: str | None = None
    children: list[ProgressNode] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.group[-1] if self.group else ""

    @property
    def fraction(self) -> float | None:
        """Done, from 0 to 1; None when the total is unknown."""
        if not self.total:
            return None
        return max(0.0, min(1.0, self.current / self.total))

    def walk(self, depth: int = 0) -> Iterable[tuple[int, ProgressNode]]:
        """This node and its descendants, depth first, with their depth."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


def progress_tree(items: Iterable[ProgressItem]) -> ProgressNode:
    """Build the tree of a build's progress items; the root is the group ``()``.

    A group reported directly keeps its own numbers; a group with no report of its own (or
    the root when only groups were reported) shows the sum of its children.
    """
    reported = {item.group: item for item in items}
    nodes: dict[tuple[str, ...], ProgressNode] = {(): ProgressNode(())}
    for group in sorted(reported, key=lambda g: (len(g), g)):
        for depth in range(1, len(group) + 1):
            path = group[:depth]
            if path not in nodes:
                nodes[path] = ProgressNode(path)
                nodes[path[:-1]].children.append(nodes[path])

    def settle(node: ProgressNode) -> None:
        for child in node.children:
            settle(child)
        item = reported.get(node.group)
        if item is not None:
            node.current, node.total, node.message = item.current, item.total, item.message
        elif node.children:
            node.current = sum(child.current for child in node.children)
            totals = [child.total for child in node.children]
            known = [t for t in totals if t is not None]
            node.total = sum(known) if len(known) == len(totals) else None

    settle(nodes[()])
    return nodes[()]
