"""The synthetic demo dataset read back through the real readers: MER-Caption+, OV-MERD and all nine
MER-UniBench folders, media included (the contract between the generator and the readers)."""

from pathlib import Path

import numpy as np
import pytest

from affectgpt.config import DataConfig
from affectgpt.data.media import load_sample_media
from affectgpt.data.mer2025 import ReadReport, read_mer2025
from affectgpt.data.records import SkipLog
from affectgpt.data.synthetic import generate
from affectgpt.data.unibench import UNIBENCH, get_spec, ground_truth, read_unibench


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("demo") / "demo", n=30, seed=0, unibench=True)


def test_every_mercaptionplus_sample_reads_back_with_official_shapes(demo_root):
    skips, report = SkipLog(), ReadReport()
    records = read_mer2025(demo_root, "mercaptionplus", on_error="raise", skips=skips, report=report)
    # the generator keeps the last n//5 names apart as OV-MERD (a held-out set)
    assert len(records) == 30 - 30 // 5 and skips.total == 0
    assert report.listed == len(records) and report.expected == 31327 and not report.size_matches
    cfg = DataConfig(root=str(demo_root))
    for record in records:
        assert record.ovlabels and 1 <= len(record.ovlabels) <= 3
        assert record.description and record.description.rstrip(".").endswith(record.ovlabels[-1])
        assert record.subtitle
        media = load_sample_media(record, cfg)
        assert media["frames"].shape == (8, 224, 224, 3) and media["frames"].dtype == np.uint8
        assert media["faces"].shape == (8, 224, 224, 3) and media["faces"].dtype == np.uint8
        assert media["audio"].shape == (8, 32000) and media["audio"].dtype == np.float32
        assert np.isfinite(media["audio"]).all() and np.abs(media["audio"]).max() > 0


def test_ovmerd_subset_reads(demo_root):
    records = read_mer2025(demo_root, "ovmerd", on_error="raise")
    assert len(records) == 30 // 5
    assert not {r.name for r in records} & {r.name for r in read_mer2025(demo_root, "mercaptionplus")}
    assert all(r.ovlabels and r.description for r in records)


@pytest.mark.parametrize("name", list(UNIBENCH))
def test_every_unibench_folder_reads_back(demo_root, name):
    spec = get_spec(name)
    records = read_unibench(name, demo_root / "unibench" / name, on_error="raise")
    assert records, name
    gt = ground_truth(records, spec.task)
    assert set(gt) == {r.name for r in records}
    if spec.task == "dimension":
        assert all(isinstance(v, float) for v in gt.values())
    elif spec.task == "discrete":
        assert all(isinstance(v, str) and v for v in gt.values())
    else:
        assert all(isinstance(v, list) and v for v in gt.values())
    media = load_sample_media(records[0], DataConfig())
    assert media["audio"].shape == (8, 32000)
    assert media["frames"].shape == (8, 224, 224, 3)


@pytest.mark.parametrize("name", list(UNIBENCH))
def test_unibench_folders_hold_the_files_the_readers_prefer(demo_root, name):
    """The generator writes the official releases' folders, so the preferred candidate (check_media=False)
    exists for every sample: MELD audio in subaudio/, IEMOCAP video as .avi."""
    root = demo_root / "unibench" / name
    records = read_unibench(name, root, on_error="raise", check_media=False)
    assert records and all(r.video.is_file() and r.audio.is_file() and r.face.is_file() for r in records)
    assert records == read_unibench(name, root, on_error="raise")  # probing finds the same files
    if name == "MELD":
        assert {r.audio.parent.name for r in records} == {"subaudio"}
    if name == "IEMOCAPFour":
        assert {(r.video.parent.name, r.video.suffix) for r in records} == {("subvideo-tgt", ".avi")}
