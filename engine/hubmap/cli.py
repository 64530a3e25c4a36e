"""The `hubmap` command line: parse arguments, call the runner, print with a reporter, exit.

Exit codes: 0 clean, 1 problems found (or records rejected / failed), 2 usage or configuration.
"""

from __future__ import annotations

import os
import sys

import click

from hubmap import __version__, runner
from hubmap.inputs import INPUT_FORMATS, InputFormatError
from hubmap.problems import HubmapError
from hubmap.report import FORMATS, FORMATTERS, default_format, format_text

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubmap")
def main() -> None:
    """hubmap: shop orders to HubSpot contacts, driven by YAML mapping files."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--format", "output_format", type=click.Choice(FORMATS),
              help="text for people, json for tools, github for CI annotations "
                   "(default: github under GitHub Actions, else text).")
def validate(paths: tuple[str, ...], output_format: str | None) -> None:
    """Check mapping files (and folders of them) for every problem, with file:line:col."""
    problems = runner.validate(paths)
    output_format = output_format or default_format(dict(os.environ))
    text = FORMATTERS[output_format](problems)
    if output_format == "json" or text:
        click.echo(text)
    errors = sum(1 for p in problems if p.is_error)
    if output_format == "text":
        warnings = len(problems) - errors
        summary = f"{errors} error(s), {warnings} warning(s)" if problems else "no problems"
        click.echo(summary, err=True)
    sys.exit(EXIT_PROBLEMS if errors else EXIT_OK)


def _fail_usage(message: str) -> None:
    click.echo(f"hubmap: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _fail_mapping(error: HubmapError) -> None:
    click.echo(format_text(error.problems), err=True)
    sys.exit(EXIT_USAGE)


@main.command()
@click.argument("paths", nargs=-1, required=True)
def test(paths: tuple[str, ...]) -> None:
    """Run the example cases written in each mapping: orders in, expected values out."""
    report = runner.test(paths)
    if report.problems:
        click.echo(format_text(report.problems), err=True)
    for case in report.cases:
        status = "ok  " if case.passed else "FAIL"
        click.echo(f"{status} {case.location}: {case.name}")
        for mismatch in case.mismatches:
            click.echo(f"     {mismatch.contact}: {mismatch.property}: expected "
                       f"{mismatch.expected!r}, got {mismatch.got!r}")
        for error in case.errors:
            click.echo(f"     {error}")
    for path in report.mappings_without_cases:
        click.echo(f"note {path}: no example cases", err=True)
    failed = sum(1 for c in report.cases if not c.passed)
    click.echo(f"{len(report.cases) - failed} passed, {failed} failed", err=True)
    sys.exit(EXIT_OK if report.passed else EXIT_PROBLEMS)


@main.command()
@click.argument("mapping")
@click.option("--input", "input_path", required=True,
              help="Orders: a .json, .ndjson or .csv file, or - for standard input.")
@click.option("--input-format", type=click.Choice(INPUT_FORMATS),
              help="Override the format guessed from the file name.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def plan(mapping: str, input_path: str, input_format: str | None, output_format: str) -> None:
    """Show what the orders would change on which contact, without writing anything."""
    try:
        result = runner.plan(mapping, input_path, input_format)
    except HubmapError as error:
        _fail_mapping(error)
        return
    except InputFormatError as error:
        _fail_usage(str(error))
        return
    from hubmap.report.plan import plan_json, plan_text

    click.echo(plan_json(result) if output_format == "json" else plan_text(result))
    sys.exit(EXIT_PROBLEMS if result.rejected else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
