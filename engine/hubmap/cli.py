"""The `hubmap` command line: parse arguments, call a use-case (`hubmap.uses`), print its outcome
with a reporter, exit with the outcome's exit class.

Exit codes: 0 clean, 1 problems found (or records rejected / failed), 2 usage or configuration.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, NoReturn

import click

from hubmap import __version__
from hubmap.inputs import INPUT_FORMATS
from hubmap.report import FORMATS, FORMATTERS, default_format, format_text
from hubmap.state import DEFAULT_STATE_FILE
from hubmap.uses.outcome import EXIT_OK, Outcome

INPUT_HELP = (
    "Orders: a .json, .ndjson or .csv file, a folder of them (read in name order), "
    "or - for standard input."
)


def _stop(outcome: Outcome) -> NoReturn:
    """Print why a use-case could not do its work, and exit with its class."""
    if outcome.problems:
        click.echo(format_text(outcome.problems), err=True)
    if outcome.message:
        click.echo(f"hubmap: {outcome.message}", err=True)
    sys.exit(outcome.exit_code)


def _value(outcome: Outcome) -> Any:
    """The use-case's result; when it has none, print why and exit."""
    if outcome.value is None and outcome.exit_code != EXIT_OK:
        _stop(outcome)
    return outcome.value


def _set_params(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    """--param NAME=VALUE: the mapping parameter NAME for this command (the environment variable
    a mapping's `params:` read)."""
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise click.BadParameter(
                f"write NAME=VALUE, such as SHOP_CURRENCY=EUR (got {item!r})", ctx=ctx, param=param
            )
        os.environ[name] = value


PARAM_OPTION = click.option(
    "--param",
    "params",
    multiple=True,
    expose_value=False,
    callback=_set_params,
    is_eager=True,
    help="NAME=VALUE: a mapping parameter for this command (overrides the "
    "environment variable NAME and the default in params:). Repeat for several.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubmap")
def main() -> None:
    """hubmap: shop orders to HubSpot contacts, driven by YAML mapping files."""


SANDBOX_DB = "hubmap-state-sandbox.db"  # where `run --sandbox` keeps the stand-in by default
STATE_HELP = (
    "Where hubmap keeps every order's latest version, its refunds and what it wrote: "
    "a SQLite file, or a PostgreSQL database URL (postgresql://user@host/db). "
    "Default from HUBMAP_STATE."
)


@main.command()
@PARAM_OPTION
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    help="text for people, json for tools, github for CI annotations "
    "(default: github under GitHub Actions, else text).",
)
@click.option(
    "--portal",
    is_flag=True,
    help="Also compare each mapping with the HubSpot portal's property definitions "
    "(HUBSPOT_ACCESS_TOKEN, HUBSPOT_API_BASE); writes nothing.",
)
def validate(paths: tuple[str, ...], output_format: str | None, portal: bool) -> None:
    """Check mapping files (and folders of them) for every problem, with file:line:col."""
    from hubmap.uses import apply
    from hubmap.uses import validate as validating

    outcome = (
        apply.portal_problems(list(paths), dict(os.environ))
        if portal
        else validating.validate(paths)
    )
    problems = _value(outcome)
    output_format = output_format or default_format(dict(os.environ))
    text = FORMATTERS[output_format](problems)
    if output_format == "json" or text:
        click.echo(text)
    if output_format == "text":
        errors = sum(1 for p in problems if p.is_error)
        warnings = len(problems) - errors
        summary = f"{errors} error(s), {warnings} warning(s)" if problems else "no problems"
        click.echo(summary, err=True)
    sys.exit(outcome.exit_code)


@main.command()
@PARAM_OPTION
@click.argument("paths", nargs=-1, required=True)
def test(paths: tuple[str, ...]) -> None:
    """Run the example cases written in each mapping: orders in, expected values out."""
    from hubmap.plan import never_given_warning
    from hubmap.uses import test as testing

    outcome = testing.test(paths)
    report = outcome.value
    if report.problems:
        click.echo(format_text(report.problems), err=True)
    for case in report.cases:
        status = "ok  " if case.passed else "FAIL"
        click.echo(f"{status} {case.location}: {case.name}")
        for mismatch in case.mismatches:
            click.echo(
                f"     {mismatch.contact}: {mismatch.property}: expected "
                f"{mismatch.expected!r}, got {mismatch.got!r}"
            )
        for error in case.errors:
            click.echo(f"     {error}")
    for path in report.mappings_without_cases:
        click.echo(f"note {path}: no example cases", err=True)
    for path, name in report.never_given:
        click.echo(f"warning {path}: {never_given_warning(name, 'example record')}", err=True)
    failed = sum(1 for c in report.cases if not c.passed)
    click.echo(f"{len(report.cases) - failed} passed, {failed} failed", err=True)
    sys.exit(outcome.exit_code)


@main.command()
@PARAM_OPTION
@click.argument("sample")
@click.option(
    "--into",
    default="mappings",
    show_default=True,
    help="The folder to write the mapping (and the files it reads) into.",
)
@click.option(
    "--form",
    is_flag=True,
    help="The Forms API mapping (a submission per checkout) "
    "instead of the contacts one, where hubmap ships both (Shopify, WooCommerce).",
)
@click.option(
    "--name", help="The name of a skeleton mapping (default: from the sample's file name)."
)
@click.option("--force", is_flag=True, help="Replace files that exist and differ.")
def init(sample: str, into: str, form: bool, name: str | None, force: bool) -> None:
    """Write a starter mapping from SAMPLE, a file of the shop's orders: the shipped mapping of
    its platform with its parameters set from the sample, or a commented skeleton listing the
    fields the sample's records carry."""
    from hubmap.report.init import init_text
    from hubmap.uses import init as starting

    outcome = starting.init(sample, into, form=form, name=name, force=force)
    click.echo(init_text(_value(outcome)))
    sys.exit(outcome.exit_code)


@main.command()
@PARAM_OPTION
@click.argument("mapping")
@click.option("--input", "input_path", required=True, help=INPUT_HELP)
@click.option(
    "--input-format",
    type=click.Choice(INPUT_FORMATS),
    help="Override the format guessed from the file name.",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def plan(mapping: str, input_path: str, input_format: str | None, output_format: str) -> None:
    """Show what the orders would change on which contact, without writing anything."""
    from hubmap.report.plan import plan_json_pieces, plan_text_lines
    from hubmap.uses import plan as planning

    outcome = planning.plan_streamed(mapping, input_path, input_format)
    result = _value(outcome)
    try:  # printed as the contacts are read from the plan's temporary state
        if output_format == "json":
            _echo_pieces(plan_json_pieces(result), "")
        else:
            _echo_pieces(plan_text_lines(result), "\n")
    finally:
        if isinstance(result, planning.StoredPlan):
            result.close()
    sys.exit(planning.exit_code(result))


def _echo_pieces(pieces: Any, joiner: str, size: int = 1 << 16) -> None:
    """Print text pieces with `joiner` between them and a newline at the end, as
    `click.echo(joiner.join(pieces))` would, in blocks of about `size` characters (one echo
    per line would cost more than making the lines)."""
    block: list[str] = []
    held = 0
    lead = ""  # the joiner before the next block, once one was printed
    for piece in pieces:
        block.append(piece)
        held += len(piece)
        if held >= size:
            click.echo(lead + joiner.join(block), nl=False)
            block, held, lead = [], 0, joiner
    click.echo(lead + joiner.join(block) if block else "")


# -- running against HubSpot ------------------------------------------------------------------


def _print_run(outcome: Outcome, output_format: str, reject_file: str | None) -> NoReturn:
    from hubmap.report.summary import summary_text

    result = _value(outcome)
    if output_format == "json":
        click.echo(json.dumps(result.summary.to_dict(), indent=2, default=str))
    else:
        click.echo(summary_text(result.summary, reject_file, result.sandbox_db))
    sys.exit(outcome.exit_code)


@main.command()
@PARAM_OPTION
@click.argument("mapping")
@click.option("--input", "input_path", required=True, help=INPUT_HELP)
@click.option(
    "--input-format",
    type=click.Choice(INPUT_FORMATS),
    help="Override the format guessed from the file name.",
)
@click.option(
    "--state",
    "state_path",
    default=DEFAULT_STATE_FILE,
    show_default=True,
    envvar="HUBMAP_STATE",
    help=STATE_HELP,
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read HubSpot and show what would change; write "
    "nothing (the run works on a private copy of the state).",
)
@click.option(
    "--rejects",
    "reject_file",
    default="rejected.ndjson",
    show_default=True,
    help="Where rejected records are written with their reasons.",
)
@click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(1, 32),
    help="Parallel HubSpot calls (all share the portal's rate limit).",
)
@click.option(
    "--sandbox",
    is_flag=True,
    help="Run against an embedded local HubSpot stand-in "
    "(no account needed); its data is kept beside the state file.",
)
@click.option(
    "--rebuild",
    is_flag=True,
    help="Forget the orders stored for this mapping and "
    "count --input again; give it the full order history (needed after a changed "
    "merge rule, type or order id, and once for a state from hubmap 0.1).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="How to print the summary.",
)
def run(
    mapping: str,
    input_path: str,
    input_format: str | None,
    state_path: str,
    dry_run: bool,
    reject_file: str,
    workers: int,
    sandbox: bool,
    rebuild: bool,
    output_format: str,
) -> None:
    """Send the orders to HubSpot: create properties, keep each order's latest version, write
    contacts."""
    from hubmap.uses import run as running

    outcome = running.run(
        mapping,
        input_path,
        environ=dict(os.environ),
        input_format=input_format,
        state_path=state_path,
        dry_run=dry_run,
        reject_file=reject_file,
        workers=workers,
        sandbox=sandbox,
        progress=_progress(),
        rebuild=rebuild,
    )
    _print_run(outcome, output_format, reject_file)


@main.command()
@click.argument("mapping")
def apply(mapping: str) -> None:
    """Create the property group and the properties a mapping writes (nothing else)."""
    from hubmap.uses import apply as applying

    outcome = applying.apply(mapping, dict(os.environ))
    result = _value(outcome)
    if result.problems:
        click.echo(format_text(result.problems), err=True)
        sys.exit(outcome.exit_code)
    click.echo(
        f"created {len(result.created)} propert(y/ies)"
        + (f": {', '.join(result.created)}" if result.created else "")
        + (f"; added options to {', '.join(result.options_added)}" if result.options_added else "")
    )


@main.command()
@click.option(
    "--state",
    "state_path",
    default=DEFAULT_STATE_FILE,
    show_default=True,
    envvar="HUBMAP_STATE",
    help=STATE_HELP,
)
@click.option(
    "--queue",
    "queue_path",
    default="hubmap-queue.db",
    show_default=True,
    help="The webhook queue of `hubmap serve`, shown when it exists.",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def status(state_path: str, queue_path: str, output_format: str) -> None:
    """Show the last runs, the stored orders, and what is pending (unconfirmed contacts,
    rejected records, refunds waiting for their order, webhooks that keep failing)."""
    from hubmap.report.summary import status_text
    from hubmap.serve.queue import status_report as queue_report
    from hubmap.serve.queue import status_text as queue_text
    from hubmap.uses import status as stating

    queue = queue_report(queue_path)
    outcome = stating.status(state_path)
    if outcome.value is None and queue is None:
        _stop(outcome)
    report = outcome.value or {"state": state_path, "scopes": []}
    if output_format == "json":
        click.echo(json.dumps(dict(report, queue=queue), indent=2, default=str))
        return
    click.echo(status_text(report))
    if queue is not None:
        click.echo(queue_text(queue))


@main.command()
@PARAM_OPTION
@click.argument("mapping")
@click.option(
    "--state",
    "state_path",
    default=DEFAULT_STATE_FILE,
    show_default=True,
    envvar="HUBMAP_STATE",
    help=STATE_HELP,
)
@click.option("--sandbox", is_flag=True, help="Use the embedded stand-in kept beside the state.")
@click.option("--rejects", "reject_file", default="rejected.ndjson", show_default=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    help="How to print the summary.",
)
def replay(
    mapping: str, state_path: str, sandbox: bool, reject_file: str, output_format: str
) -> None:
    """Send rejected and failed records again (after the mapping or data was fixed)."""
    from hubmap.uses import replay as replaying

    outcome = replaying.replay(
        mapping,
        dict(os.environ),
        state_path=state_path,
        sandbox=sandbox,
        reject_file=reject_file,
        progress=_progress(),
    )
    _print_run(outcome, output_format, reject_file)


@main.group(invoke_without_command=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--db",
    "db_path",
    default=SANDBOX_DB,
    show_default=True,
    help="The stand-in's data (the same file `run --sandbox` keeps beside the "
    "default state, and `sandbox show` reads).",
)
@click.option("--rate-limit", default=190, show_default=True, help="Requests per 10 s window.")
@click.option(
    "--error-rate",
    default=0.0,
    show_default=True,
    help="Share of requests answered with a 502/503 (fault injection).",
)
@click.pass_context
def sandbox(
    ctx: click.Context, port: int, host: str, db_path: str, rate_limit: int, error_rate: float
) -> None:
    """Serve the local HubSpot stand-in (token 'sandbox-token'); 'show' and 'dump' look inside.

    Point HUBSPOT_API_BASE and HUBSPOT_FORMS_BASE at the printed address."""
    if ctx.invoked_subcommand is not None:
        return
    from hubmap.uses import sandbox as sandboxing

    sandboxing.serve(db_path, host=host, port=port, rate_limit=rate_limit, error_rate=error_rate)


@sandbox.command("show")
@click.argument("email")
@click.option("--db", "db_path", default=SANDBOX_DB, show_default=True)
def sandbox_show(email: str, db_path: str) -> None:
    """Show one contact of a stand-in database, with its form submissions."""
    from hubmap.uses import sandbox as sandboxing

    click.echo(json.dumps(_value(sandboxing.show(db_path, email)), indent=2, ensure_ascii=False))


@sandbox.command("dump")
@click.option("--db", "db_path", default=SANDBOX_DB, show_default=True)
def sandbox_dump(db_path: str) -> None:
    """Print everything in a stand-in database as JSON."""
    from hubmap.uses import sandbox as sandboxing

    click.echo(json.dumps(_value(sandboxing.dump(db_path)), indent=2, ensure_ascii=False))


def _progress():  # type: ignore[no-untyped-def]
    from hubmap.report.progress import terminal_progress

    return terminal_progress()


# -- live intake: hubmap serve / worker / queue ------------------------------------------------


# The options only an intake uses: a worker takes no webhooks and listens on no route (its
# status port is --status-port).
_INTAKE_ONLY = ("--auth", "--secret-env", "--path", "--port")
WORKER_SECRET_ENV = "HUBMAP_WORKER_READS_NO_SECRET"


def _serve_options() -> list[tuple[str, Any]]:
    """Each option of `serve`, with its flag."""
    return [
        (
            "--config",
            click.option(
                "--config",
                "config_path",
                help="The serve configuration (YAML; see examples/serve.yaml).",
            ),
        ),
        (
            "--mapping",
            click.option(
                "--mapping",
                "mapping_paths",
                multiple=True,
                help="Without --config: a mapping to run (repeat for several).",
            ),
        ),
        (
            "--auth",
            click.option(
                "--auth",
                type=click.Choice(["shopify", "woocommerce", "bearer"]),
                help="Without --config: how the route checks requests.",
            ),
        ),
        (
            "--secret-env",
            click.option(
                "--secret-env",
                help="Without --config: the environment variable that holds the "
                "webhook secret (or bearer token).",
            ),
        ),
        (
            "--path",
            click.option(
                "--path",
                "route_path",
                default="/webhooks",
                show_default=True,
                help="Without --config: the route's URL path.",
            ),
        ),
        ("--host", click.option("--host", help="Listen address (overrides the file).")),
        (
            "--port",
            click.option(
                "--port", type=click.IntRange(0, 65535), help="Listen port (overrides the file)."
            ),
        ),
        (
            "--state",
            click.option(
                "--state",
                "state_path",
                envvar="HUBMAP_STATE",
                help="The state: a SQLite file or "
                "a PostgreSQL URL (overrides the file; default from HUBMAP_STATE).",
            ),
        ),
        (
            "--queue",
            click.option(
                "--queue",
                "queue_path",
                envvar="HUBMAP_QUEUE",
                help="The queue: a SQLite file or "
                "a PostgreSQL URL (overrides the file; default from HUBMAP_QUEUE).",
            ),
        ),
        (
            "--sandbox",
            click.option(
                "--sandbox",
                is_flag=True,
                help="Send to an embedded local HubSpot stand-in kept beside the state file.",
            ),
        ),
    ]


def _intake_options(function):  # type: ignore[no-untyped-def]
    """The options of `serve`: a config file, or one route from flags."""
    for _, option in reversed(_serve_options()):
        function = option(function)
    return function


def _worker_options(function):  # type: ignore[no-untyped-def]
    """The options of `serve` that a worker uses."""
    for flag, option in reversed(_serve_options()):
        if flag not in _INTAKE_ONLY:
            function = option(function)
    return function


def _intake_config(
    config_path: str | None,
    mapping_paths: tuple[str, ...],
    auth: str | None,
    secret_env: str | None,
    route_path: str,
    host: str | None,
    port: int | None,
    state_path: str | None,
    queue_path: str | None,
) -> Any:
    import logging

    from hubmap.uses import serve as serving

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    return _value(
        serving.configure(
            config_path,
            mapping_paths,
            auth,
            secret_env,
            route_path,
            host=host,
            port=port,
            state_path=state_path,
            queue_path=queue_path,
        )
    )


@main.command()
@_intake_options
@click.option(
    "--no-worker", is_flag=True, help="Only receive and queue; run `hubmap worker` separately."
)
def serve(no_worker: bool, sandbox: bool, **options: object) -> None:
    """Receive signed shop webhooks, queue them durably, and send them through the mappings."""
    from hubmap.uses import serve as serving

    config = _intake_config(**options)  # type: ignore[arg-type]
    _value(
        serving.service(config, dict(os.environ), worker=not no_worker, sandbox=sandbox)
    ).serve_forever()


@main.command()
@_worker_options
@click.option(
    "--status-port",
    type=click.IntRange(0, 65535),
    help="Serve this worker's "
    "/healthz and /metrics on this port (0: a free one, logged), at --host.",
)
def worker(sandbox: bool, status_port: int | None, **options: object) -> None:
    """Send queued webhooks through the mappings (when `hubmap serve --no-worker` receives)."""
    from hubmap.uses import serve as serving

    # without --config, the mappings' one route as serve would build it (its auth and secret
    # are the intake's business: a worker never reads them)
    config = _intake_config(
        auth="bearer", secret_env=WORKER_SECRET_ENV, route_path="/webhooks", port=None, **options
    )  # type: ignore[arg-type]
    outcome = serving.worker(config, dict(os.environ), sandbox=sandbox, status_port=status_port)
    if not outcome.ok:
        _stop(outcome)


def _queue_path(config_path: str | None, queue_path: str | None) -> str:
    if queue_path:
        return queue_path
    if config_path:
        from hubmap.uses import serve as serving

        return str(_value(serving.configure(config_path, (), None, None, "")).queue_path)
    return "hubmap-queue.db"


@main.group("queue")
def queue_group() -> None:
    """Look at the webhook queue of `hubmap serve`, and send dead letters again."""


@queue_group.command("status")
@click.option("--config", "config_path", help="The serve configuration (names the queue file).")
@click.option("--queue", "queue_path", help="The queue file (default: hubmap-queue.db).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text")
def queue_status(config_path: str | None, queue_path: str | None, output_format: str) -> None:
    """Jobs by mapping and status, and the dead letters with their reasons."""
    from hubmap.serve.queue import status_text
    from hubmap.uses import serve as serving

    outcome = serving.queue_status(_queue_path(config_path, queue_path))
    report = _value(outcome)
    click.echo(
        json.dumps(report, indent=2, default=str)
        if output_format == "json"
        else status_text(report)
    )
    sys.exit(outcome.exit_code)


@queue_group.command("requeue")
@click.argument("events", nargs=-1, type=int)
@click.option("--mapping", help="Only this mapping's dead letters (its name).")
@click.option("--config", "config_path", help="The serve configuration (names the queue file).")
@click.option("--queue", "queue_path", help="The queue file (default: hubmap-queue.db).")
def queue_requeue(
    events: tuple[int, ...], mapping: str | None, config_path: str | None, queue_path: str | None
) -> None:
    """Put dead letters back into the queue (all, or the EVENT ids given) with fresh attempts."""
    from hubmap.uses import serve as serving

    outcome = serving.requeue(_queue_path(config_path, queue_path), list(events) or None, mapping)
    click.echo(f"{_value(outcome)} dead letter(s) queued again")


@main.group("state")
def state_group() -> None:
    """Move a state to another database, or bring it to this hubmap's version."""


@state_group.command("copy")
@click.argument("source")
@click.argument("target")
def state_copy(source: str, target: str) -> None:
    """Copy the state SOURCE into the new, empty state TARGET (each a SQLite file or a
    PostgreSQL URL), for example from one machine's file into the PostgreSQL that several
    machines share.  Stop runs on SOURCE first; SOURCE is left as it was."""
    from hubmap.uses import state_admin

    outcome = state_admin.copy(source, target)
    report = _value(outcome)
    rows = ", ".join(f"{n:,} {table}" for table, n in report["rows"].items() if n)
    click.echo(f"copied {report['from']} into {report['to']}: {rows or 'nothing (empty)'}")
    sys.exit(outcome.exit_code)


@state_group.command("migrate")
@click.option(
    "--state",
    "state_path",
    default=DEFAULT_STATE_FILE,
    show_default=True,
    envvar="HUBMAP_STATE",
    help=STATE_HELP,
)
def state_migrate(state_path: str) -> None:
    """Bring the state's tables to this hubmap's version (any command does so when it opens
    the state; this does it alone, say before several workers start)."""
    from hubmap.uses import state_admin

    outcome = state_admin.migrate(state_path)
    report = _value(outcome)
    click.echo(
        f"{report['state']}: state version {report['version']} (this hubmap writes "
        f"{report['current']})"
    )
    sys.exit(outcome.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
