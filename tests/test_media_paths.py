"""Which decoder a file goes to, and the named error for a missing still image (media.py's dispatch rules)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from affectgpt.data import media
from affectgpt.data.records import DataError
from affectgpt.data.synthetic_render import SAMPLE_RATE, _write_video


def test_auto_backend_sends_containers_straight_to_ffmpeg(tmp_path: Path, caplog) -> None:
    """'auto' tries libsndfile only for .wav (docstring rule): an mp4 never goes through a failed soundfile attempt
    (which logs 'soundfile cannot read' at debug level) and still decodes its AAC track."""
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    path = tmp_path / "clip.mp4"
    _write_video(path, np.zeros((8, 32, 32, 3), dtype=np.uint8), tone)
    with caplog.at_level(logging.DEBUG, logger=media.logger.name):
        waveform, rate = media._decode_audio(path, backend="auto")
    assert not [r for r in caplog.records if "soundfile cannot read" in r.getMessage()]
    assert rate > 0 and waveform.shape[1] > rate // 2  # about a second of the tone came back


def test_missing_still_image_is_named_file_not_found(tmp_path: Path) -> None:
    """A missing image is 'file not found' naming the sample and the path, not a decoder error."""
    path = tmp_path / "missing.png"
    with pytest.raises(DataError, match="file not found") as err:
        media.load_image(path, size=32, sample="s042")
    assert "s042" in str(err.value) and str(path) in str(err.value)
