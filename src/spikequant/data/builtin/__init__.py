"""The datasets spikequant ships, one descriptor a module, registered on import in the order
`spikequant datasets` lists them."""

from . import ndigits, nmnist, dvsgesture, cifar10dvs, ncaltech101  # noqa: F401, I001
