"""The build page's log: one bounded page of records at a time, from the start, the end or
either side of a record, and the whole log as a text download. No Flask here.

A page is named by a cursor, never an offset (a log of a million lines pages as fast at its
end as at its start): ``after`` a record's ``seq`` (``0``: the start), ``before`` one, or
neither: the tail, which the page follows while the build runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobcontrol.models import LogRecord
from jobcontrol.present import log_line

if TYPE_CHECKING:
    from jobcontrol.storage import Storage

#: records a page holds at most (and a live update sends at most)
LOG_PAGE = 500


@dataclass(frozen=True)
class LogPage:
    """Some records of a log, in order, and what lies either side of them."""

    records: list[LogRecord]
    #: records exist before the first shown
    older: bool
    #: records exist after the last shown (a tail has none when read)
    newer: bool
    #: the page is the log's end: the page follows it while the build runs
    tail: bool

    @property
    def first_seq(self) -> int | None:
        return self.records[0].seq if self.records else None

    @property
    def last_seq(self) -> int | None:
        return self.records[-1].seq if self.records else None


def read_page(storage: Storage, build_id: int, *, min_level: int = 0,
              after: int | None = None, before: int | None = None,
              size: int = LOG_PAGE) -> LogPage:
    """The page ``after`` a seq, ``before`` one, or (neither) the log's tail; each read
    asks for one record more than it shows, to know whether the log goes on that way."""
    if after is not None:
        found = _forward(storage, build_id, after, min_level, size + 1)
        records = found[:size]
        start = records[0].seq if records else after + 1
        older = bool(storage.get_logs_before(build_id, limit=1, before_seq=start,
                                             min_level=min_level))
        return LogPage(records, older=older, newer=len(found) > size, tail=False)
    found = storage.get_logs_before(build_id, limit=size + 1, before_seq=before,
                                    min_level=min_level)
    records = found[-size:] if size > 0 else []
    if before is None:
        return LogPage(records, older=len(found) > size, newer=False, tail=True)
    end = records[-1].seq if records else before - 1
    newer = has_newer(storage, build_id, after=end, min_level=min_level)
    return LogPage(records, older=len(found) > size, newer=newer, tail=False)


def has_newer(storage: Storage, build_id: int, *, after: int, min_level: int = 0) -> bool:
    """Whether the log has records after ``after`` (what a page that is not the tail shows
    as its "newer" link while the build runs)."""
    return bool(_forward(storage, build_id, after, min_level, 1))


def _forward(storage: Storage, build_id: int, after: int, min_level: int,
             count: int) -> list[LogRecord]:
    """The first ``count`` records after ``after``, read in windows of ``seq`` bounded on
    both sides and widening while they come up short (as
    :meth:`~jobcontrol.storage.Storage.iter_logs` reads): a page from the start of a long
    log never makes the database sort the rest of it."""
    last = storage.get_logs_before(build_id, limit=1)  # where the log ends, as read now
    end = last[0].seq if last else 0
    records: list[LogRecord] = []
    low, window = after, max(count, 1) * 2
    while len(records) < count and low < end:
        high = min(low + window, end)
        records += storage.get_logs(build_id, min_level=min_level, after_seq=low,
                                    until_seq=high, limit=count - len(records))
        low, window = high, window * 4
    return records


def new_records(storage: Storage, build_id: int, *, after: int, min_level: int = 0,
                size: int = LOG_PAGE) -> tuple[list[LogRecord], bool]:
    """What a followed tail gets on a poll: the records after ``after``, at most ``size``;
    when more came than that, the last ``size`` of the log instead, and True (the page
    starts over: it holds a page, never the whole log)."""
    found = storage.get_logs(build_id, min_level=min_level, after_seq=after, limit=size + 1)
    if len(found) <= size:
        return found, False
    return storage.get_logs_before(build_id, limit=size, min_level=min_level), True


def log_text(storage: Storage, build_id: int, *, min_level: int = 0) -> Iterator[str]:
    """The whole log as text lines (the ``logs`` command's), read a page at a time: the raw
    download, in bounded memory however long the log."""
    for record in storage.iter_logs(build_id, min_level=min_level):
        yield log_line(record) + "\n"
