"""`hubmap sandbox`: serve the local HubSpot stand-in, or look inside one of its databases."""

from __future__ import annotations

from typing import Any

from hubmap.uses.outcome import EXIT_PROBLEMS, EXIT_USAGE, Outcome


def serve(db_path: str, *, host: str, port: int, rate_limit: int, error_rate: float) -> None:
    from hubmap.sandbox import SandboxConfig
    from hubmap.sandbox import serve as serve_sandbox

    serve_sandbox(
        db_path,
        host=host,
        port=port,
        config=SandboxConfig(rate_limit_max=rate_limit, error_rate=error_rate),
    )


def show(db_path: str, email: str) -> Outcome:
    from hubmap.sandbox import show_contact

    try:
        contact = show_contact(db_path, email)
    except FileNotFoundError as error:
        return Outcome(None, EXIT_USAGE, message=str(error))
    if contact is None:
        return Outcome(None, EXIT_PROBLEMS, message=f"no contact {email} in {db_path}")
    return Outcome(contact)


def dump(db_path: str) -> Outcome:
    from hubmap.sandbox import dump as dump_sandbox

    try:
        data: Any = dump_sandbox(db_path)
    except FileNotFoundError as error:
        return Outcome(None, EXIT_USAGE, message=str(error))
    return Outcome(data)
