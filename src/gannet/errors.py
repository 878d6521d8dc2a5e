"""The one exception a user can cause: the CLI prints its message as a single sentence."""


class GannetError(Exception):
    """Bad input or a missing resource: the message says what is wrong and what to do."""
