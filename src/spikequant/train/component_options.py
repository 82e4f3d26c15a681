"""The options of a run's quantizer and neuron: read from the settings, checked against what
each component declares (spikequant.options), and handed to the network and the training loop.

    quantizer_options   every option of the run's quantizer once validated: its constructor's
                        (passed to each layer's quantizer) and its training options (the
                        sigmoid quantizer's temperature schedule). A config file may hold one
                        table per quantizer ([train.quantizer_options.sigmoid]); the run's
                        quantizer's table is the one used, so a shared base file or a sweep
                        over quantizers can carry each one's options.
    neuron, neuron_options
                        the network's neuron and the options given for it (only those: the
                        network's own neuron settings stand for the others).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, OptionError
from ..options import check_options, parse_option_texts, resolve_options
from .setting import where

# set with --per-channel (per_channel in a config file), not as a quantizer option
PER_CHANNEL = "per_channel"


def canonical_names(cfg: Any) -> None:
    """The registered spelling of the dataset, network, quantizer and neuron names
    (`N-MNIST` -> `nmnist`); a name nothing registered stays as given, for the check that
    names the choices."""
    from ..data import DATASETS
    from ..models import MODELS
    from ..quant import QUANTIZERS
    from ..snn import NEURONS

    for attr, registry in (("dataset", DATASETS), ("quantizer", QUANTIZERS),
                           ("neuron", NEURONS)):
        value = getattr(cfg, attr)
        if isinstance(value, str) and value in registry:
            setattr(cfg, attr, registry.canonical(value))
    if isinstance(cfg.model, str):
        for registry in (MODELS, DATASETS):
            if cfg.model in registry:
                cfg.model = registry.canonical(cfg.model)
                break


def given_quantizer_options(cfg: Any) -> dict[str, Any]:
    """The options the settings give the run's quantizer: its own table (when the settings
    hold one per quantizer) under the top-level ones."""
    from ..quant import QUANTIZERS

    flag = where(cfg.field("quantizer_options"))
    tables = {k: v for k, v in cfg.quantizer_options.items() if isinstance(v, Mapping)}
    flat = {k: v for k, v in cfg.quantizer_options.items() if not isinstance(v, Mapping)}
    own: Mapping[str, Any] = {}
    for name, table in tables.items():
        if name not in QUANTIZERS:
            raise ConfigError(
                f"{flag}: [{name}] is not a quantizer; a table of quantizer_options holds one "
                f"quantizer's options and is named after it ({', '.join(QUANTIZERS)})"
            )
        if QUANTIZERS.canonical(name) == cfg.quantizer:
            own = table
    return {**own, **flat}


def resolve_quantizer_options(cfg: Any) -> None:
    """Replace `cfg.quantizer_options` by every option of the run's quantizer (given ones
    checked, defaults for the rest), after checking the values by building the quantizer and
    its training schedule; ConfigError naming the option otherwise."""
    from ..quant import QUANTIZERS

    cls = QUANTIZERS.find(cfg.quantizer)
    if cls is None:  # the --quantizer check names the choices
        return
    flag = where(cfg.field("quantizer_options"))
    given = given_quantizer_options(cfg)
    declared = cls.declared_options()
    if PER_CHANNEL in given:
        raise ConfigError(f"{flag}: per-channel scales are set with --per-channel (per_channel "
                          "in a config file), not as a quantizer option")
    if cfg.per_channel and PER_CHANNEL not in declared:
        raise ConfigError(f"{where(cfg.field('per_channel'))}: quantizer {cls.name!r} has no "
                          "per-channel scales")
    own = {k: o for k, o in declared.items() if k != PER_CHANNEL}
    resolved = resolve_options(f"quantizer {cls.name!r}", own, given, flag)
    constructor, training = cls.split_options(resolved)
    try:
        cls.training_schedule(training, cfg.epochs)
        if not cls.is_float:
            cls.from_spec(cfg.bits, cfg.levels, **constructor, **_per_channel(cfg))
    except OptionError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(f"quantizer {cls.name!r} ({flag}): {err}") from None
    cfg.quantizer_options = resolved


def _per_channel(cfg: Any) -> dict[str, bool]:
    # passed only when asked for, as a quantizer without per-channel scales takes no such option
    return {PER_CHANNEL: True} if cfg.per_channel else {}


def quantizer_constructor_options(cfg: Any) -> dict[str, Any]:
    """The options each layer's quantizer is built with (a validated `cfg`)."""
    from ..quant import quantizer_class

    constructor, _ = quantizer_class(cfg.quantizer).split_options(cfg.quantizer_options)
    return {**constructor, **_per_channel(cfg)}


def quantizer_training_options(cfg: Any) -> dict[str, Any]:
    """The options the training loop reads (a validated `cfg`)."""
    from ..quant import quantizer_class

    return quantizer_class(cfg.quantizer).split_options(cfg.quantizer_options)[1]


def network_neuron(cfg: Any) -> str | None:
    """The run's neuron: --neuron, else the model overrides', else the network's own."""
    from ..models import model_recipe

    chosen = cfg.neuron or cfg.model_overrides.get("neuron")
    if chosen is not None:
        return chosen
    try:
        return model_recipe(cfg.model or cfg.dataset).options.get("neuron")
    except ValueError:  # an unknown network: its own check names the choices
        return None


def check_neuron(cfg: Any) -> None:
    """ConfigError for a neuron set twice, a network without a neuron option, or a neuron
    option its neuron does not declare (or a value it refuses)."""
    from ..models import model_recipe
    from ..snn import NEURONS

    flag = where(cfg.field("neuron_options"))
    overrides = cfg.model_overrides
    for key in ("neuron", "neuron_options"):
        if getattr(cfg, key) and overrides.get(key) is not None:
            raise ConfigError(f"{where(cfg.field(key))} and model_overrides.{key} both set the "
                              "neuron; keep one")
    if not (cfg.neuron or cfg.neuron_options):
        return
    try:
        recipe = model_recipe(cfg.model or cfg.dataset)
    except ValueError:
        return
    if "neuron" not in recipe.options:
        raise ConfigError(f"{where(cfg.field('neuron'))}: network {recipe.name!r} has no neuron "
                          "option")
    name = network_neuron(cfg)
    cls = NEURONS.get(name)
    check_options(f"neuron {cls.neuron_name!r}", cls.declared_options(), cfg.neuron_options,
                  flag)
    try:
        cls.make(2.0, **cfg.neuron_options)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"neuron {name!r} ({flag}): {err}") from None


def network_overrides(cfg: Any) -> dict[str, Any]:
    """The options `models.build` gets besides the quantizer: the model overrides, the
    neuron and its options, excluded layers, per-layer bits and the quantizer's options."""
    overrides = dict(cfg.model_overrides)
    if cfg.neuron:
        overrides["neuron"] = cfg.neuron
    if cfg.neuron_options:
        overrides["neuron_options"] = dict(cfg.neuron_options)
    if cfg.exclude:
        overrides["exclude"] = list(cfg.exclude)
    if cfg.layer_bits:
        overrides["layer_bits"] = dict(cfg.layer_bits)
    options = quantizer_constructor_options(cfg)
    if options:
        overrides["quant_options"] = options
    return overrides


def parse_cli_options(kind: str, texts: Mapping[str, str], settings: Mapping[str, Any],
                      flag: str) -> dict[str, Any]:
    """The KEY=VALUE texts of --quantizer-option / --neuron-option read by the types the
    run's quantizer / neuron declares (`settings`: every setting so far, to find it)."""
    from types import SimpleNamespace

    from ..quant import QUANTIZERS
    from ..snn import NEURONS

    if kind == "quantizer":
        name = settings["quantizer"]
        cls = QUANTIZERS.find(name)
        declared = {} if cls is None else {
            k: o for k, o in cls.declared_options().items() if k != PER_CHANNEL}
    else:
        name = network_neuron(SimpleNamespace(**settings))
        cls = NEURONS.find(name) if name else None
        declared = {} if cls is None else cls.declared_options()
    if cls is None:  # the settings check names the unknown component
        return dict(texts)
    return parse_option_texts(f"{kind} {name!r}", declared, texts, flag)
