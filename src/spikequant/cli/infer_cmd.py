"""`spikequant infer` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("infer", help="(not yet available)")
    p.set_defaults(func=lambda args: print("infer: not yet available") or 1)
