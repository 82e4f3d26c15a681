"""The one Registry type every kind of component uses, and that all five kinds follow its
rules the same way: names, any-spelling lookups, duplicates, listing, built-ins, and the
installed plugins loaded once on a miss."""

from __future__ import annotations

import dataclasses

import pytest

from spikequant import plugins
from spikequant.data import DATASETS, dataset_info
from spikequant.errors import UnknownComponent
from spikequant.models import MODELS, build_float_on_meta, model_recipe
from spikequant.quant import QUANTIZERS, quantizer_class
from spikequant.registry import Registry, name_key
from spikequant.snn import NEURONS, SURROGATES, make_neuron


def test_names_are_checked_and_looked_up_in_any_spelling():
    reg: Registry[object] = Registry("widget", "register one with reg.register")
    first = object()
    assert reg.register("fast_widget", first) is first
    for spelling in ("fast_widget", "fast-widget", "Fast-Widget", "FASTWIDGET"):
        assert reg.get(spelling) is first and spelling in reg
    assert reg.canonical("Fast-Widget") == "fast_widget" and name_key("N-MNIST") == "nmnist"
    for bad in ("", "Fast", "a b", "-x", "x!", None, 3):
        with pytest.raises(ValueError, match="lower-case letters, digits and underscores"):
            reg.register(bad, object())
    assert reg.names() == ("fast_widget",)


def test_a_taken_name_is_refused_in_every_spelling_and_the_same_entry_is_a_no_op():
    reg: Registry[object] = Registry("widget")
    entry = object()
    reg.register("widget", entry)
    assert reg.register("widget", entry) is entry  # imported twice: no change
    for name in ("widget", "wid_get"):
        with pytest.raises(ValueError, match="already taken"):
            reg.register(name, object())
    assert len(reg) == 1


def test_listing_order_unregister_and_builtins():
    reg: Registry[int] = Registry("number")
    reg.register("one", 1, builtin=True)
    reg.register("two", 2)
    reg.register("three", 3)
    assert reg.names() == ("one", "two", "three") and list(reg) == list(reg.names())
    assert reg.items() == [("one", 1), ("two", 2), ("three", 3)] and reg.values() == [1, 2, 3]
    assert reg.unregister("TWO") == 2 and reg.names() == ("one", "three")
    assert reg.unregister("two") is None
    with pytest.raises(ValueError, match="built-in number"):
        reg.unregister("one")
    with reg.registered("four", 4):
        assert reg["four"] == 4
    assert "four" not in reg
    with pytest.raises(UnknownComponent, match="unknown number 'four'; choose one of one, three"):
        reg.get("four")


def test_a_miss_loads_the_installed_plugins_once(monkeypatch):
    reg: Registry[str] = Registry("gadget")
    calls = []

    class EntryPoint:
        name, value = "lab", "lab_module"

        def load(self):
            calls.append(1)
            reg.register("lab_gadget", "from the plugin")
            return lambda: None

    monkeypatch.setattr(plugins, "_installed_done", False)
    monkeypatch.setattr(plugins, "installed_entry_points", lambda: [EntryPoint()])
    assert reg.get("lab-gadget") == "from the plugin" and calls == [1]
    with pytest.raises(UnknownComponent):
        reg.get("other")
    assert calls == [1]  # once a process


def test_a_broken_installed_plugin_is_a_warning_naming_it(monkeypatch):
    class Broken:
        name, value = "broken", "broken_module"

        def load(self):
            raise ImportError("no module named broken_module")

    monkeypatch.setattr(plugins, "_installed_done", False)
    monkeypatch.setattr(plugins, "installed_entry_points", lambda: [Broken()])
    with pytest.warns(plugins.PluginWarning, match="'broken' .*broken_module.*uninstall"):
        assert plugins.load_installed_plugins() is False


@pytest.mark.parametrize("registry, builtin", [
    (QUANTIZERS, "sigmoid"), (NEURONS, "plif"), (SURROGATES, "fast_sigmoid"),
    (DATASETS, "nmnist"), (MODELS, "dvsgesture"),
])
def test_every_kind_is_one_registry_with_its_builtins_kept(registry, builtin):
    assert isinstance(registry, Registry)
    assert registry.is_builtin(builtin) and builtin in registry.names()
    assert registry.get(builtin.upper().replace("_", "-")) is registry.get(builtin)
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister(builtin)
    with pytest.raises(UnknownComponent, match=f"unknown {registry.kind} 'nope'"):
        registry.get("nope")


def test_dataset_and_network_names_resolve_alike():
    # a dataset name in any spelling finds its network too (N-MNIST used to find the dataset
    # and then fail with "unknown model")
    assert dataset_info("N-MNIST").name == model_recipe("N-MNIST").name == "nmnist"
    assert tuple(build_float_on_meta("N_MNIST").input_shape) == (2, 34, 34)
    from spikequant.train.config import TrainConfig

    cfg = TrainConfig(dataset="N-MNIST", quantizer="Sigmoid", neuron="LIF")
    cfg.validate()
    assert (cfg.dataset, cfg.quantizer, cfg.neuron) == ("nmnist", "sigmoid", "lif")
    assert quantizer_class("SIGMOID").name == "sigmoid"
    assert make_neuron("P-LIF", 3.0).tau == pytest.approx(3.0)


def test_a_surrogate_record_is_registered_under_its_own_name():
    record = SURROGATES.get("atan")
    other = dataclasses.replace(record, name="atan_copy", kernel=None)
    with SURROGATES.registered("atan_copy", other):
        assert SURROGATES.get("atan-copy") is other
    assert "atan_copy" not in SURROGATES
