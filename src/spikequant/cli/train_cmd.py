"""`spikequant train` (placeholder until its module lands)."""


def register(sub) -> None:
    p = sub.add_parser("train", help="(not yet available)")
    p.set_defaults(func=lambda args: print("train: not yet available") or 1)
