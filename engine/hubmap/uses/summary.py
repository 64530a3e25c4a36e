"""What a run reports: counts in the summary's words, what it created and wrote, what failed.

The words for orders (`hubmap.sync.Tally`): new, changed, unchanged, stale, withdrawn, skipped;
for refunds: refunds (seen for the first time), refunds_changed, refunds_unchanged, and
refunds_waiting (stored, their order has not come yet - a state figure at the end of the run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubmap.sync import Tally


@dataclass
class Summary:
    records: int = 0
    orders: Tally = field(default_factory=Tally)
    rejected: int = 0
    refunds_waiting: int = 0
    contacts_created: int = 0
    contacts_updated: int = 0
    contacts_unchanged: int = 0
    contacts_failed: int = 0
    forms: bool = False  # a forms mapping's run: submissions, not contacts
    submissions: int = 0
    submissions_failed: int = 0
    # sent again without the hutk after HubSpot answered INVALID_HUTK (counted in submissions)
    submissions_without_hutk: int = 0
    hutk_refused: list[str] = field(default_factory=list)  # their order ids
    drift: int = 0
    properties_created: list[str] = field(default_factory=list)
    properties_started: list[str] = field(default_factory=list)  # new to the state: from now on
    # definitions changed since orders were counted (apply to orders counted from now on):
    mapping_changed: list[str] = field(default_factory=list)
    rebuilt: bool = False
    renamed_from: str | None = None  # the mapping's earlier name, whose state it took along
    dry_run: bool = False
    planned: dict[str, dict[str, str]] = field(default_factory=dict)  # dry run: would be sent
    failures: list[tuple[str, str]] = field(default_factory=list)
    # orders skipped with a reason (counted in `skipped`): forms orders too old to submit
    skipped_orders: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # worth a look, not a failure
    calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # why the run stopped early (daily limit, auth)

    def __getattr__(self, name: str) -> Any:
        # the order words read as summary.new, summary.stale ...
        if name in Tally.__dataclass_fields__:
            return getattr(self.orders, name)
        raise AttributeError(name)

    @property
    def ok(self) -> bool:
        return not (
            self.rejected or self.contacts_failed or self.submissions_failed or self.stopped
        )

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "orders"}
        data.update(self.orders.as_dict())
        data["failures"] = [{"key": k, "reason": r} for k, r in self.failures]
        data["skipped_orders"] = [{"key": k, "reason": r} for k, r in self.skipped_orders]
        return data


class Progress:
    """What a run reports while it works; the CLI gives a progress bar or plain lines."""

    def phase(self, name: str, total: int | None) -> None: ...
    def advance(self, amount: int = 1) -> None: ...
    def done(self) -> None: ...
