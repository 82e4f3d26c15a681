"""The dataset registry: descriptors by name, and the networks that read their facts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from spikequant.data import DATASETS, DatasetInfo, dataset_info, get_dataset
from spikequant.data.registry import register_dataset, unregister_dataset
from spikequant.models import MODELS, build_float_on_meta, model_recipe


@pytest.mark.parametrize("name", list(DATASETS))
def test_each_dataset_network_takes_its_frames_and_scores_its_classes(name):
    info, spec = dataset_info(name), model_recipe(name)
    assert (spec.input_shape, spec.time_steps, spec.num_classes) == (
        info.frame_shape, info.default_time_steps, info.num_classes)
    net = build_float_on_meta(name)
    scores = net(torch.zeros(info.default_time_steps, 3, *info.frame_shape, device="meta"))
    assert tuple(scores.shape) == (3, info.num_classes)


def test_every_network_classifies_a_registered_dataset_and_the_benchmarks_have_their_own():
    assert set(MODELS) == set(DATASETS)
    assert [dataset_info(n).num_classes for n in MODELS] == [10, 10, 11, 10, 101]


class _Blank(DatasetInfo):
    def find(self, root: Path, split: str):
        return [], [root]


def _blank(name: str) -> DatasetInfo:
    return _Blank(name=name, title="blank", classes=("a", "b"), sensor_size=(8, 6, 2),
                  default_time_steps=3, folder="BLANK", how_to_get="nowhere", split="none")


def test_a_duplicate_or_misspelt_name_is_refused_and_unregister_forgets_it(tmp_path):
    with pytest.raises(ValueError, match="'nmnist' is already taken"):
        register_dataset(_blank("nmnist"))
    with pytest.raises(ValueError, match="'n_mnist' is already taken .*registered as 'nmnist'"):
        register_dataset(_blank("n_mnist"))
    with pytest.raises(ValueError, match="lower-case letters, digits and underscores"):
        register_dataset(_blank("My-Set"))
    with pytest.raises(TypeError):
        register_dataset(dataclasses.asdict(_blank("blank")))
    register_dataset(_blank("blank"))
    try:
        assert dataset_info("Blank") is DATASETS["blank"]
        assert model_recipe("blank").input_shape == (2, 6, 8)  # the generic network
        with pytest.raises(FileNotFoundError, match="blank: no train recordings .*nowhere"):
            get_dataset("blank", data_dir=tmp_path, progress=False)
        with pytest.raises(FileNotFoundError, match="cannot be downloaded: nowhere"):
            get_dataset("blank", data_dir=tmp_path, download=True, progress=False)
    finally:
        unregister_dataset("blank")
    assert "blank" not in DATASETS
    with pytest.raises(ValueError, match="unknown model 'blank'"):
        model_recipe("blank")


def test_default_augmentation_and_frame_shape_come_from_the_descriptor():
    from spikequant.data.augment import FrameAugment, make_augment

    for name, info in DATASETS.items():
        assert make_augment(name, True) == FrameAugment(**info.default_augment)
    assert dataset_info("ncaltech101").frame_shape == (2, 48, 48)
    assert dataset_info("dvsgesture").frame_shape == (2, 128, 128)
