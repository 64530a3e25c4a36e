"""The `hubmap` command line: parse arguments, call the runner, print with a reporter, exit.

Exit codes: 0 clean, 1 problems found (or records rejected / failed), 2 usage or configuration.
"""

from __future__ import annotations

import os
import sys

import click

from hubmap import __version__, runner
from hubmap.report import FORMATS, FORMATTERS, default_format

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


if __name__ == "__main__":  # pragma: no cover
    main()
