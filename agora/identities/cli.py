"""`agora users …`: web sign-in for the people of the marketplace."""

from __future__ import annotations

from typing import Annotated

import typer

users_app = typer.Typer(no_args_is_help=True, help="Web sign-in: passwords of operators, sellers and buyers.")


@users_app.command("set-password")
def set_password(email: Annotated[str, typer.Argument(help="the account's e-mail address")]) -> None:
    """Set the web password of every account signing in with EMAIL, read from a prompt without echo."""
    from agora import cli
    from agora.errors import AgoraError
    from agora.identities import passwords

    password = typer.prompt("New password", hide_input=True, confirmation_prompt=True, err=True)
    db = cli._database()
    try:
        with db.unit_of_work() as session:
            accounts = passwords.set_password_for_email(session, email, password, actor="cli")
    except AgoraError as exc:
        cli.fail([exc.detail])
    for account in accounts:
        cli.out.print(f"password set for {account.role.value} {account.handle}")
