"""`spikequant datasets` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("datasets", help="(not yet available)")
    p.set_defaults(func=lambda args: print("datasets: not yet available") or 1)
