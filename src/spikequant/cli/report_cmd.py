"""`spikequant report` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("report", help="(not yet available)")
    p.set_defaults(func=lambda args: print("report: not yet available") or 1)
