"""Errors a person can act on, shared by every part of looplab."""


class UserError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits with code 2."""
