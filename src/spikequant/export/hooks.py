"""Forward hooks on chosen modules, through one global hook.

A global forward hook sees every module call and dispatches by module identity, so counting
and tracing never write into the network's own modules (nothing is left on a model that is
saved or copied while hooked, and modules with unusual hook dictionaries work too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn
from torch.nn.modules.module import register_module_forward_hook

Hook = Callable[[nn.Module, tuple, Any], None]


@contextmanager
def forward_hooks(hooks: dict[nn.Module, Hook]) -> Iterator[None]:
    """Within the block, `hooks[m](m, inputs, output)` runs after every call of module m."""
    by_id = {id(m): fn for m, fn in hooks.items()}

    def dispatch(module: nn.Module, inputs: tuple, output: Any) -> None:
        fn = by_id.get(id(module))
        if fn is not None:
            fn(module, inputs, output)

    handle = register_module_forward_hook(dispatch)
    try:
        yield
    finally:
        handle.remove()
