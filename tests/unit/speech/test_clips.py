"""Tests for clip loading: audio folders, Hugging Face datasets (local audiofolder), resampling."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pytest_onnxparity.speech.audio.clips import Clip, ClipError, load_audio_folder, resample
from pytest_onnxparity.speech.audio.hf_datasets import load_hf_dataset
from pytest_onnxparity.speech.audio.source import ClipSource
from tests.paths import CLIPS_DIR


def tone(frequency: float, seconds: float, rate: int) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(
        np.float32
    )


def peak_hz(audio: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[spectrum.argmax()])


def write(path: Path, audio: np.ndarray, rate: int, text: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, audio, rate)
    if text is not None:
        path.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return path


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """wav at 16 kHz, flac at 16 kHz, wav at 8 kHz (a 1 kHz tone), one in a subfolder."""
    folder = tmp_path / "clips"
    write(folder / "b_flac.flac", tone(500, 0.5, 16000), 16000, "Flac clip.")
    write(folder / "a_wav.wav", tone(700, 1.0, 16000), 16000, "wav clip")
    write(folder / "c_narrow.wav", tone(1000, 0.75, 8000), 8000, "narrowband clip")
    write(folder / "speaker" / "d_nested.wav", tone(300, 0.25, 16000), 16000)
    (folder / "notes.md").write_text("not audio")
    return folder


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


def test_a_folder_loads_wav_and_flac_sorted_with_their_transcripts(mixed_folder: Path) -> None:
    clips = load_audio_folder(mixed_folder, sample_rate=16000)
    assert [c.id for c in clips] == ["a_wav", "b_flac", "c_narrow", "speaker/d_nested"]
    assert [c.text for c in clips] == ["wav clip", "Flac clip.", "narrowband clip", None]
    assert all(c.sample_rate == 16000 and c.audio.dtype == np.float32 for c in clips)
    assert [round(c.duration_s, 3) for c in clips] == [1.0, 0.5, 0.75, 0.25]


def test_an_8k_clip_is_resampled_to_16k_keeping_its_pitch(mixed_folder: Path) -> None:
    narrow = load_audio_folder(mixed_folder, sample_rate=16000)[2]
    assert narrow.id == "c_narrow"
    assert len(narrow.audio) == 12000
    assert peak_hz(narrow.audio, 16000) == pytest.approx(1000, abs=5)


def test_sample_rate_none_keeps_each_files_rate(mixed_folder: Path) -> None:
    clips = load_audio_folder(mixed_folder, sample_rate=None)
    assert [c.sample_rate for c in clips] == [16000, 16000, 8000, 16000]


def test_limit_keeps_the_first_clips_in_sorted_order(mixed_folder: Path) -> None:
    assert [c.id for c in load_audio_folder(mixed_folder, 16000, limit=2)] == ["a_wav", "b_flac"]


def test_stereo_audio_is_downmixed_to_mono(tmp_path: Path) -> None:
    left, right = tone(440, 0.1, 16000), np.zeros(1600, np.float32)
    write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000)
    (clip,) = load_audio_folder(tmp_path, 16000)
    assert clip.audio.ndim == 1
    np.testing.assert_allclose(clip.audio, left / 2, atol=1e-4)


def test_committed_speech_clips_load_and_resample(tmp_path: Path) -> None:
    clips = load_audio_folder(CLIPS_DIR, sample_rate=16000)
    assert [c.id for c in clips] == ["fox", "narrowband", "numbers"]
    assert clips[0].text == "The quick brown fox jumps over the lazy dog."
    native = {c.id: c for c in load_audio_folder(CLIPS_DIR, sample_rate=None)}
    assert native["narrowband"].sample_rate == 8000
    assert clips[1].duration_s == pytest.approx(native["narrowband"].duration_s, abs=1e-3)
    assert all(c.duration_s > 1.0 for c in clips)


def test_a_missing_folder_fails_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ClipError, match=r"nowhere: no such folder; point clips_dir at a folder"):
        load_audio_folder(tmp_path / "nowhere", 16000)


def test_an_empty_folder_fails_naming_it(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no audio")
    with pytest.raises(ClipError, match=r"no .wav or .flac files; add audio clips"):
        load_audio_folder(tmp_path, 16000)


def test_unreadable_audio_fails_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "good.wav", tone(440, 0.1, 16000), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(ClipError, match=r"broken.wav: cannot read audio \(.*\); re-encode it as"):
        load_audio_folder(tmp_path, 16000)


def test_an_empty_audio_file_fails_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path / "silent.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(ClipError, match=r"silent.wav: the audio has no samples"):
        load_audio_folder(tmp_path, 16000)


def test_a_non_positive_limit_is_rejected(mixed_folder: Path) -> None:
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        load_audio_folder(mixed_folder, 16000, limit=0)


def test_loading_audio_without_the_speech_extra_names_the_packages_to_install(
    mixed_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(
        ImportError,
        match=r"soundfile is needed .*: pip install soundfile \(all of them: pip install jiwer "
        r"soundfile scipy datasets\)$",
    ):
        load_audio_folder(mixed_folder, 16000)


# --------------------------------------------------------------------------------------------
# resample and Clip
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [(8000, 16000), (44100, 16000), (22050, 16000)])
def test_resample_scales_the_length_and_keeps_the_pitch(source: int, target: int) -> None:
    audio = resample(tone(440, 1.0, source), source, target)
    assert audio.dtype == np.float32
    assert len(audio) == target
    assert peak_hz(audio, target) == pytest.approx(440, abs=3)


def test_resample_to_the_same_rate_returns_the_audio_unchanged() -> None:
    audio = tone(440, 0.1, 16000)
    assert resample(audio, 16000, 16000) is audio


def test_clips_compare_and_serialise_without_their_audio() -> None:
    a = Clip(id="x", audio=np.zeros(16000, np.float32), sample_rate=16000, text="hi")
    b = Clip(id="x", audio=np.ones(16000, np.float32), sample_rate=16000, text="hi")
    assert a == b
    assert "audio" not in repr(a)
    assert json.loads(json.dumps(a.to_json())) == {
        "id": "x",
        "sample_rate": 16000,
        "duration_s": 1.0,
        "text": "hi",
    }


# --------------------------------------------------------------------------------------------
# Hugging Face datasets (a local audiofolder)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audiofolder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ``audiofolder`` dataset: a ``test`` split of three 8 kHz wav files + metadata.jsonl."""
    root = tmp_path_factory.mktemp("audiofolder")
    rows = []
    for index, frequency in enumerate((300, 600, 900)):
        name = f"utt{index}.wav"
        write(root / "test" / name, tone(frequency, 0.5, 8000), 8000)
        rows.append({"file_name": name, "sentence": f"utterance number {index}", "speaker": "s1"})
    lines = [json.dumps(row) for row in rows]
    (root / "test" / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_a_local_audiofolder_loads_through_datasets(audiofolder: Path, tmp_path: Path) -> None:
    clips = load_hf_dataset(
        str(audiofolder),
        split="test",
        text_column="sentence",
        sample_rate=16000,
        cache_dir=tmp_path / "cache",
    )
    assert [c.id for c in clips] == ["utt0", "utt1", "utt2"]
    assert [c.text for c in clips] == [f"utterance number {i}" for i in range(3)]
    assert all(c.sample_rate == 16000 and len(c.audio) == 8000 for c in clips)
    assert peak_hz(clips[1].audio, 16000) == pytest.approx(600, abs=5)


def test_a_streamed_audiofolder_honours_the_limit(audiofolder: Path) -> None:
    clips = load_hf_dataset(
        str(audiofolder), text_column="sentence", streaming=True, limit=2, sample_rate=None
    )
    assert [c.id for c in clips] == ["utt0", "utt1"]
    assert [c.sample_rate for c in clips] == [8000, 8000]


def test_a_dataset_without_transcripts_loads_with_text_column_none(audiofolder: Path) -> None:
    clips = load_hf_dataset(str(audiofolder), text_column=None, streaming=True, limit=1)
    assert clips[0].text is None


def test_a_missing_text_column_fails_listing_the_columns(audiofolder: Path) -> None:
    with pytest.raises(
        ClipError,
        match=r"no text column 'text' \(columns: audio, sentence, speaker\); set text_column",
    ):
        load_hf_dataset(str(audiofolder), streaming=True)


def test_a_missing_audio_column_fails_listing_the_columns(audiofolder: Path) -> None:
    with pytest.raises(
        ClipError,
        match=r"no audio column 'wave' \(columns: audio, sentence, speaker\); set audio_column",
    ):
        load_hf_dataset(str(audiofolder), audio_column="wave", streaming=True)


def test_an_unknown_split_fails_naming_the_dataset(audiofolder: Path) -> None:
    with pytest.raises(ClipError, match=r"audiofolder.*: .*train.*; check split/config"):
        load_hf_dataset(str(audiofolder), split="train", text_column="sentence", streaming=True)


# --------------------------------------------------------------------------------------------
# ClipSource
# --------------------------------------------------------------------------------------------


def test_a_clip_source_resolves_clips_dir_from_the_base_dir(mixed_folder: Path) -> None:
    source = ClipSource(clips_dir="clips", limit=3, sample_rate=16000)
    assert len(source.load(base_dir=mixed_folder.parent)) == 3
    assert len(source.load(base_dir=mixed_folder.parent, limit=1)) == 1
    assert source.load(base_dir=mixed_folder.parent, sample_rate=8000)[0].sample_rate == 8000


def test_a_clip_source_loads_a_dataset_folder(audiofolder: Path) -> None:
    source = ClipSource(dataset=audiofolder.name, text_column="sentence", streaming=True)
    clips = source.load(base_dir=audiofolder.parent, limit=2)
    assert [c.text for c in clips] == ["utterance number 0", "utterance number 1"]


def test_a_clip_source_needs_exactly_one_of_folder_and_dataset() -> None:
    with pytest.raises(ValueError, match="exactly one of clips_dir and dataset"):
        ClipSource()
    with pytest.raises(ValueError, match="exactly one of clips_dir and dataset"):
        ClipSource(clips_dir="a", dataset="b")


def test_folder_clip_ids_are_listed_without_reading_audio(mixed_folder: Path) -> None:
    (mixed_folder / "broken.wav").write_bytes(b"not audio")  # listed, never decoded
    source = ClipSource(clips_dir="clips")
    assert source.clip_ids(base_dir=mixed_folder.parent) == [
        "a_wav",
        "b_flac",
        "broken",
        "c_narrow",
        "speaker/d_nested",
    ]
    assert source.clip_ids(base_dir=mixed_folder.parent, limit=2) == ["a_wav", "b_flac"]


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "prepared"])
def test_dataset_clip_ids_match_the_ids_of_the_loaded_clips(
    audiofolder: Path, tmp_path: Path, streaming: bool
) -> None:
    source = ClipSource(dataset=str(audiofolder), text_column="sentence", streaming=streaming)
    loaded = source.load(limit=2, cache_dir=tmp_path / "cache")
    assert source.clip_ids(limit=2) == [c.id for c in loaded] == ["utt0", "utt1"]
    assert source.clip_ids() == ["utt0", "utt1", "utt2"]


def test_a_clip_source_describes_itself_for_headers(audiofolder: Path) -> None:
    assert ClipSource(clips_dir="clips").describe(Path("/p")) == "clips_dir /p/clips"
    hub = ClipSource(dataset="org/set", dataset_config="clean", streaming=True)
    assert hub.describe() == "dataset org/set (clean, split test, streamed)"
    local = ClipSource(dataset=audiofolder.name, split="test")
    assert local.describe(audiofolder.parent) == f"dataset {audiofolder} (split test)"
