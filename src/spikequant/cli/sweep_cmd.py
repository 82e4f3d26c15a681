"""`spikequant sweep` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("sweep", help="(not yet available)")
    p.set_defaults(func=lambda args: print("sweep: not yet available") or 1)
