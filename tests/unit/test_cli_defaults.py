"""The command line's defaults agree with one another: what `run --sandbox` writes is what
`hubmap sandbox`, `sandbox show` and `sandbox dump` read when no --db is given, and git ignores
the files a README command leaves behind."""

from __future__ import annotations

import subprocess

import click

from hubmap.cli import main
from hubmap.state import DEFAULT_STATE_FILE
from hubmap.uses.context import default_sandbox_db
from tests.conftest import ROOT


def _default(command: click.Command, name: str) -> object:
    (param,) = [p for p in command.params if p.name == name]
    return param.default


def test_every_sandbox_command_defaults_to_the_run_s_sandbox_data() -> None:
    written = default_sandbox_db(DEFAULT_STATE_FILE)
    group = main.commands["sandbox"]
    assert isinstance(group, click.Group)
    assert _default(group, "db_path") == written
    assert _default(group.commands["show"], "db_path") == written
    assert _default(group.commands["dump"], "db_path") == written


def test_git_ignores_what_the_readme_commands_leave() -> None:
    left = [
        DEFAULT_STATE_FILE,
        f"{DEFAULT_STATE_FILE}-wal",
        default_sandbox_db(DEFAULT_STATE_FILE),
        "hubmap-queue.db",
        "rejected.ndjson",
    ]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *left],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.stdout.split() == left


def test_worker_help_lists_only_what_a_worker_uses() -> None:
    def flags(name: str) -> set[str]:
        return {opt for p in main.commands[name].params for opt in getattr(p, "opts", [])}

    intake_only = {"--auth", "--secret-env", "--path", "--port"}
    assert intake_only <= flags("serve")
    assert not intake_only & flags("worker")
    assert {"--config", "--mapping", "--state", "--queue", "--sandbox", "--status-port"} <= flags(
        "worker"
    )
