"""`spikequant eval` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("eval", help="(not yet available)")
    p.set_defaults(func=lambda args: print("eval: not yet available") or 1)
