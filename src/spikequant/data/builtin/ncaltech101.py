"""N-Caltech101: Caltech101 images seen by an ATIS sensor along saccades; sizes vary.

Layout (tonic's download, once its inner Caltech101.zip is extracted, and the original
release): NCALTECH101/Caltech101/<class>/*.bin, ATIS .bin files. No official split: seeded
stratified 90/10 per class. Recordings are shifted to the origin and resized to 48x48.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ..descriptor import DatasetInfo, register_dataset
from ..sources import Candidate, sorted_files

# The 101 folder names of N-Caltech101 in the sorted order its folders list in (labels follow it).
# N-Caltech101 has Faces_easy but not Caltech101's duplicate "Faces" class.
NCALTECH101_CLASSES = tuple(
    sorted(
        """BACKGROUND_Google Faces_easy Leopards Motorbikes accordion airplanes anchor ant barrel
        bass beaver binocular bonsai brain brontosaurus buddha butterfly camera cannon car_side
        ceiling_fan cellphone chair chandelier cougar_body cougar_face crab crayfish crocodile
        crocodile_head cup dalmatian dollar_bill dolphin dragonfly electric_guitar elephant emu
        euphonium ewer ferry flamingo flamingo_head garfield gerenuk gramophone grand_piano
        hawksbill headphone hedgehog helicopter ibis inline_skate joshua_tree kangaroo ketch lamp
        laptop llama lobster lotus mandolin mayfly menorah metronome minaret nautilus octopus okapi
        pagoda panda pigeon pizza platypus pyramid revolver rhino rooster saxophone schooner
        scissors scorpion sea_horse snoopy soccer_ball stapler starfish stegosaurus stop_sign
        strawberry sunflower tick trilobite umbrella watch water_lilly wheelchair wild_cat
        windsor_chair wrench yin_yang""".split()
    )
)


class NCaltech101(DatasetInfo):
    def find(self, root: Path, split: str) -> tuple[list[Candidate], list[Path]]:
        folder = root / "Caltech101" if (root / "Caltech101").is_dir() else root
        known = {name: i for i, name in enumerate(self.classes)}
        recs = []
        for path in sorted_files(folder, ".bin"):
            if path.name.startswith("annotation") or path.parent.parent != folder:
                continue
            if path.parent.name not in known:
                raise ValueError(
                    f"{path.parent}: {path.parent.name!r} is not an N-Caltech101 class; remove "
                    "that folder from the dataset"
                )
            recs.append((path, known[path.parent.name], "atis_bin", None, None))
        return recs, [folder]

    def download(self, data_dir: Path, split: str) -> None:
        super().download(data_dir, split)
        # tonic's archive holds Caltech101.zip, which tonic leaves packed.
        root = data_dir / self.folder
        inner = root / "Caltech101.zip"
        if inner.exists() and not (root / "Caltech101").is_dir():
            with zipfile.ZipFile(inner) as archive:
                archive.extractall(root)


NCALTECH101 = register_dataset(
    NCaltech101(
        name="ncaltech101",
        title="N-Caltech101 (ATIS sensor, saccades over Caltech101 images; sizes vary)",
        classes=NCALTECH101_CLASSES,
        sensor_size=(304, 240, 2),
        default_time_steps=10,
        folder="NCALTECH101",
        how_to_get="Pass --download (fetched through tonic), or get Caltech101.zip from "
        "https://www.garrickorchard.com/datasets/n-caltech101 and extract it so that "
        "D/NCALTECH101/Caltech101/<class>/*.bin exists.",
        split="seeded stratified 90/10 per class",
        expected_files={"all": 8709},
        resize=(48, 48),
        variable_size=True,
        default_augment={"crop_pad": 4, "flip": True},
        tonic_class="NCALTECH101",
    )
)
