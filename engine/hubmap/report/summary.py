"""Print a run's summary and the state's status for people."""

from __future__ import annotations

from typing import Any

from hubmap.uses.summary import Summary


def summary_text(summary: Summary, reject_file: str | None, sandbox_db: str | None) -> str:
    o = summary.orders
    lines = [
        f"records read: {summary.records}  orders: {o.new} new, {o.changed} changed, "
        f"{o.unchanged} unchanged, {o.stale} stale, {o.withdrawn} withdrawn  skipped: "
        f"{o.skipped}  rejected: {summary.rejected}",
    ]
    if o.refunds or o.refunds_changed or o.refunds_unchanged or summary.refunds_waiting:
        lines.append(
            f"refunds: {o.refunds} new, {o.refunds_changed} changed, "
            f"{o.refunds_unchanged} unchanged; {summary.refunds_waiting} waiting for "
            "their order"
        )
    if summary.forms or summary.submissions or summary.submissions_failed:
        lines.append(
            f"form submissions: {summary.submissions} sent, {summary.submissions_failed} failed"
        )
        if summary.submissions_without_hutk:
            lines.append(
                f"sent without the hutk: {summary.submissions_without_hutk} (HubSpot answered "
                "INVALID_HUTK, so they were sent again without it: the conversion is on the "
                "contact, not tied to the visitor's page views; check how the shop copies the "
                "hubspotutk cookie): " + _some(summary.hutk_refused)
            )
    else:
        lines.append(
            f"contacts: {summary.contacts_created} created, {summary.contacts_updated} updated, "
            f"{summary.contacts_unchanged} unchanged, {summary.contacts_failed} failed"
        )
    reasons: dict[str, list[str]] = {}
    for key, reason in summary.skipped_orders:
        reasons.setdefault(reason, []).append(key)
    for reason, keys in reasons.items():
        lines.append(f"skipped {len(keys)} order(s), {reason}: {_some(keys)}")
    if summary.properties_created:
        lines.append(f"properties created: {', '.join(summary.properties_created)}")
    if summary.properties_started:
        lines.append(
            "new in the mapping, counted from this run on (use --rebuild with the full "
            f"history to include older orders): {', '.join(summary.properties_started)}"
        )
    if summary.mapping_changed:
        lines.append(
            "changed in the mapping, applied to orders from this run on: "
            f"{', '.join(summary.mapping_changed)}"
        )
    if summary.renamed_from:
        lines.append(
            f"renamed: this mapping was '{summary.renamed_from}'; its state, orders and "
            "fences follow the new name"
        )
    if summary.rebuilt:
        lines.append("rebuilt: the stored counts were recomputed from this input")
    if summary.dry_run:
        lines.append("dry run: nothing was written (HubSpot was read; the state is unchanged)")
    for contact, values in sorted(summary.planned.items()):
        lines.append(
            f"would write {contact}: "
            + ", ".join(f"{name}={value!r}" for name, value in values.items())
        )
    if summary.drift:
        lines.append(
            f"drift: {summary.drift} value(s) were changed in HubSpot since hubmap wrote "
            "them; HubSpot's value was kept as the new starting point (see hubmap status)"
        )
    lines.append(
        f"HubSpot calls: {summary.calls} ({summary.rate_limited} answered 429, "
        f"{summary.retries} retried)  time: {summary.seconds:.1f} s"
    )
    for warning in summary.warnings[:10]:
        lines.append(f"warning: {warning}")
    if len(summary.warnings) > 10:
        lines.append(f"... and {len(summary.warnings) - 10} more warnings (--format json)")
    for key, reason in summary.failures[:20]:
        lines.append(f"failed {key}: {reason}")
    if len(summary.failures) > 20:
        lines.append(f"... and {len(summary.failures) - 20} more failures (hubmap status)")
    if summary.rejected and reject_file:
        lines.append(f"rejected records and their reasons: {reject_file}")
    if summary.stopped:
        lines.append(f"stopped: {summary.stopped}")
    if sandbox_db:
        lines.append(
            f"sandbox data: {sandbox_db} (look with: hubmap sandbox show EMAIL --db {sandbox_db})"
        )
    return "\n".join(lines)


def _some(keys: list[str], shown: int = 10) -> str:
    """The first keys, and how many more (`--format json` lists them all)."""
    text = ", ".join(keys[:shown])
    if len(keys) > shown:
        text += f" ... and {len(keys) - shown} more (--format json)"
    return text


def status_text(report: dict[str, Any]) -> str:
    lines = [f"state: {report['state']}"]
    if not report["scopes"]:
        lines.append("nothing has run yet")
    for scope in report["scopes"]:
        lines.append(
            f"{scope['scope']}: {scope['orders_counted']} orders counted, "
            f"{scope['orders_withdrawn']} withdrawn, {scope['refunds']} refunds "
            f"({scope['refunds_waiting']} waiting for their order), "
            f"{scope['contacts_unconfirmed']} contacts waiting for HubSpot, "
            f"{len(scope['pending_rejects'])} rejected records pending"
        )
        if scope.get("rebuild_needed"):
            lines.append(
                "  written by hubmap 0.1: run once with --rebuild and the full order history"
            )
        for failed in scope["contacts_failed"][:10]:
            lines.append(f"  failed {failed['contact']}: {failed['reason']}")
        for reject in scope["pending_rejects"][:10]:
            lines.append(
                f"  rejected {reject['order_id'] or reject['where']}: "
                + (f"{reject['property']}: " if reject["property"] else "")
                + reject["reason"]
            )
        for run in scope["runs"]:
            counts = run["counts"]
            lines.append(
                f"  run {run['id']} {run['started']} -> {run['ended'] or '...'} "
                f"{run['outcome']}: {counts.get('new', 0)} new, "
                f"{counts.get('changed', 0)} changed, "
                f"{counts.get('unchanged', 0)} unchanged, "
                f"{counts.get('stale', 0)} stale, "
                f"{counts.get('withdrawn', 0)} withdrawn, "
                f"{counts.get('refunds', 0)} refunds, "
                f"{counts.get('rejected', 0)} rejected, {counts.get('calls', 0)} calls"
            )
    return "\n".join(lines)
