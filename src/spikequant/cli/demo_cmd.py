"""`spikequant demo` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("demo", help="(not yet available)")
    p.set_defaults(func=lambda args: print("demo: not yet available") or 1)
