"""`spikequant models` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("models", help="(not yet available)")
    p.set_defaults(func=lambda args: print("models: not yet available") or 1)
