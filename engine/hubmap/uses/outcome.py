"""What a use-case returns: its result, the problems found, and the exit class the CLI exits with.

Exit classes: 0 clean, 1 problems found (records rejected or failed, a case failed, the portal
refused the mapping), 2 usage or configuration (a mapping that does not load, a missing input, a
missing token, a locked or unusable state).  `outcome_of` is the one place that turns the
exceptions of the layers below into an outcome, so the CLI needs no exception ladder.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hubmap import sql
from hubmap.hubspot import HubSpotConfigError, HubSpotError
from hubmap.hubspot.errors import HubSpotAuthError
from hubmap.inputs import InputFormatError
from hubmap.problems import HubmapError, Location, Problem
from hubmap.state import StateError, StateLockedError, failure_message

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2

# The portal refused the mapping (type clash, form lacks fields): nothing was written.
PORTAL_REFUSALS = frozenset({"HM601", "HM602", "HM605", "HM606"})


class ConfigurationError(RuntimeError):
    """The command cannot start: missing token, unusable state file, another run holds the lock."""


@dataclass
class Outcome:
    """`value`: the use-case's result (a summary, a plan, a report ...), or None when it could
    not run; `problems` to print; `message` a usage or configuration error in one line."""

    value: Any = None
    exit_code: int = EXIT_OK
    problems: list[Problem] = field(default_factory=list)
    message: str | None = None
    error: BaseException | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OK

    def unwrap(self) -> Any:
        """The value, or the exception that stopped the use-case (for library callers)."""
        if self.error is not None:
            raise self.error
        return self.value


T = TypeVar("T")


def outcome_of(
    work: Callable[[], T], exit_code: Callable[[T], int] = lambda _: EXIT_OK, where: str = ""
) -> Outcome:
    """Run `work`; its value with `exit_code(value)`, or the outcome of what stopped it."""
    try:
        value = work()
    except HubmapError as error:
        refused = any(p.code in PORTAL_REFUSALS for p in error.problems)
        return Outcome(
            None, EXIT_PROBLEMS if refused else EXIT_USAGE, list(error.problems), error=error
        )
    except (
        ConfigurationError,
        InputFormatError,
        StateError,
        StateLockedError,
        HubSpotConfigError,
    ) as error:
        return Outcome(None, EXIT_USAGE, message=str(error), error=error)
    except HubSpotAuthError as error:
        return Outcome(None, EXIT_USAGE, message=f"HubSpot refused the token: {error}", error=error)
    except HubSpotError as error:
        problem = Problem(
            "HM600",
            f"HubSpot: {error}",
            Location(where or "<hubspot>"),
            hint="check HUBSPOT_API_BASE, the token's scopes, and HubSpot's status",
        )
        return Outcome(None, EXIT_USAGE, [problem], error=error)
    except sql.DatabaseError as error:  # the state's database: full disk, damage, gone
        return Outcome(None, EXIT_USAGE, message=failure_message(error), error=error)
    except OSError as error:  # a file hubmap writes (the reject file): full disk, no rights
        return Outcome(None, EXIT_USAGE, message=_os_failure(error), error=error)
    return Outcome(value, exit_code(value))


def _os_failure(error: OSError) -> str:
    name = f"'{error.filename}'" if error.filename else "a file"
    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return (
            f"cannot write {name}: the disk is full ({reason}). Nothing is lost: free some "
            "space and run the same command again"
        )
    return f"cannot use {name}: {reason}"
