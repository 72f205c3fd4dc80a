"""The CLI's error type: a message for the user and exit code 2 (usage, policy or configuration)."""

from __future__ import annotations

from typing import IO, Any, NoReturn

import click

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class ConfigProblem(click.ClickException):
    exit_code = EXIT_CONFIG

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"route-agent: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise ConfigProblem(message)
