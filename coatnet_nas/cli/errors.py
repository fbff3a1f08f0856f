"""Library errors in the command line's words: the parameter an error is about becomes its flag.

The library names parameters as Python does (``workers``, ``storage_url``, ``proxy.epochs``) and
tags the error with that name. A command's function parameters carry the same names as the
library's (``storage_url: str = typer.Option(..., "--storage")``), so the flag comes from the
running command's own click parameters: adding an option needs no second edit anywhere.
"""

from __future__ import annotations

import re
from typing import Any

from coatnet_nas.errors import CoatnetError

_PAREN_PARAM = re.compile(r"\(([a-z_][a-z0-9_.]*)\)")
_QUOTED_PARAM = re.compile(r"`([a-z_][a-z0-9_.]*)`")


def _candidates(param: str) -> tuple[str, ...]:
    """``proxy.epochs`` is the option ``proxy_epochs``, else ``epochs``; ``workers`` itself."""
    if "." not in param:
        return (param,)
    return (param.replace(".", "_"), param.rsplit(".", 1)[-1])


def flag_for(param: str | None, command: Any) -> str | None:
    """The long flag of ``command``'s option stored under ``param`` (None: no such option)."""
    if not param or command is None:
        return None
    options = {p.name: p for p in command.params if p.param_type_name == "option"}
    for name in _candidates(param):
        option = options.get(name)
        if option is not None:
            return next((o for o in option.opts if o.startswith("--")), option.opts[0])
    return None


def user_message(exc: CoatnetError, command: Any = None) -> str:
    """The error's message, saying which option of ``command`` it is about.

    A message that starts with its parameter's name (``workers must be >= 1``) gets the flag in
    its place (``--workers must be >= 1``); any other gets the flag in front (``--dataset:
    unknown dataset 'x'``), so prose that merely contains the word is never rewritten. Another
    parameter a message points to is written in parentheses, ``start over (fresh)``, and shown
    as its flag, ``start over (--fresh)``; one in backquotes (```dataset`` folder:PATH``) is
    replaced by its flag (``--dataset folder:PATH``). Without a command (or an option of that
    name) the message stays as the library wrote it.
    """
    message = _PAREN_PARAM.sub(
        lambda m: f"({flag})" if (flag := flag_for(m[1], command)) else m[0], str(exc)
    )
    message = _QUOTED_PARAM.sub(lambda m: flag_for(m[1], command) or m[0], message)
    param = getattr(exc, "param", None)
    flag = flag_for(param, command)
    if flag is None:
        return message
    if re.match(rf"{re.escape(param)}(?![\w-])", message):  # type: ignore[arg-type]
        return flag + message[len(param) :]  # type: ignore[arg-type]
    return f"{flag}: {message}"


def failing_command(exc: BaseException) -> Any:
    """The innermost command that was running when ``exc`` was raised (from its traceback).

    click runs a command as ``Command.invoke(self, ctx)``; the deepest frame holding a
    click ``Context`` named ``ctx`` is the leaf command's (``latency table``, not ``latency``).
    """
    found = None
    tb = exc.__traceback__
    while tb is not None:
        ctx = tb.tb_frame.f_locals.get("ctx")
        command = getattr(ctx, "command", None)
        if command is not None and hasattr(command, "params"):  # typer's (click's) Context
            found = command
        tb = tb.tb_next
    return found


def one_paragraph(message: str) -> str:
    """Blank lines squeezed out, so a message (a list of problems included) stays one paragraph."""
    return "\n".join(line for line in message.splitlines() if line.strip())
