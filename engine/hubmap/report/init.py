"""What `hubmap init` did, in words: the platform and why, the parameters, the files written,
and what validate and the example cases say of the copy."""

from __future__ import annotations

from hubmap.report import format_text
from hubmap.uses.init import InitReport


def init_text(report: InitReport) -> str:
    lines: list[str] = []
    found = report.recognition
    if found is not None:
        lines.append(
            f"{report.sample}: {found.platform} ({found.records} of {report.records} "
            f"record(s) read have {found.evidence})"
        )
        lines.append(f"starter: the shipped {report.mapping_file.rsplit('/', 1)[-1]}")
        for choice in report.params:
            lines.append(f"parameter {choice.name} = {choice.value} (from {choice.origin})")
    else:
        lines.append(
            f"{report.sample}: no platform hubmap ships a mapping for ({report.records} "
            "record(s) read); wrote a skeleton listing their fields, with guesses "
            "marked 'guessed' to check"
        )
    for path in report.written:
        lines.append(f"wrote {path}")
    for path in report.kept:
        lines.append(f"kept  {path} (already the same)")
    for reason in report.unreadable[:3]:
        lines.append(f"note: a document of the sample could not be read: {reason}")
    if report.problems:
        lines.append(format_text(report.problems))
    if report.cases_passed or report.cases_failed:
        lines.append(
            f"example cases: {report.cases_passed} passed, {report.cases_failed} failed"
            + (f" (see hubmap test {report.mapping_file})" if report.cases_failed else "")
        )
    lines.append(f"next: hubmap plan {report.mapping_file} --input {report.sample}")
    return "\n".join(lines)
