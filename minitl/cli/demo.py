"""``minitl demo``: being built (see the open issue)."""


def register(subparsers) -> None:
    pass
