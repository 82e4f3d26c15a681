"""`spikequant export` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("export", help="(not yet available)")
    p.set_defaults(func=lambda args: print("export: not yet available") or 1)
