"""Config: YAML loading, typed overrides, unknown-key errors with suggestions, round trips."""

from pathlib import Path

import pytest
import yaml

from affectgpt.config import Config, ConfigError, format_config, load_config

REPO = Path(__file__).resolve().parents[1]
OFFICIAL = REPO / "configs" / "affectgpt_qwen2.5_7b.yaml"


def test_overrides_are_converted_to_field_types():
    cfg = load_config(
        None,
        [
            "train.lr=3e-4",
            "train.epochs=7",
            "train.iters_per_epoch=1e3",
            "model.gradient_checkpointing=true",
            "data.shuffle_media=off",
            "model.lora_targets=[q_proj, v_proj]",
            "train.betas=[0.9, 0.95]",
            "data.unibench_roots={MER2023: /data/mer2023}",
            "data.root=/tmp/x=y",
        ],
    )
    assert cfg.train.lr == pytest.approx(3e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.epochs == 7 and isinstance(cfg.train.epochs, int)
    assert cfg.train.iters_per_epoch == 1000 and isinstance(cfg.train.iters_per_epoch, int)
    assert cfg.model.gradient_checkpointing is True
    assert cfg.data.shuffle_media is False
    assert cfg.model.lora_targets == ["q_proj", "v_proj"]
    assert cfg.train.betas == [0.9, 0.95]
    assert cfg.data.unibench_roots == {"MER2023": "/data/mer2023"}
    assert cfg.data.root == "/tmp/x=y"  # only the first '=' splits


@pytest.mark.parametrize(
    "override, bad_key, suggestion",
    [
        ("train.lrr=1", "train.lrr", "train.lr"),
        ("model.lora_rank=8", "model.lora_rank", "model.lora_r"),
        ("trian.lr=1", "trian", "train"),
    ],
)
def test_unknown_key_names_it_and_suggests_closest(override, bad_key, suggestion):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    message = str(err.value)
    assert f"'{bad_key}'" in message and f"'{suggestion}'" in message


@pytest.mark.parametrize(
    "override",
    [
        "train.epochs=many",
        "train.lr=fast",
        "model.gradient_checkpointing=maybe",
        "train.epochs=2.5",
        "model.lora_targets=q_proj",
    ],
)
def test_bad_values_are_rejected_with_the_key(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
        load_config(None, [override])


def test_override_without_equals_or_section_is_an_error():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["lr=1"])


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batchsize: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "train.batch_size" in str(err.value)


def test_official_recipe_values_and_round_trip(tmp_path):
    cfg = load_config(OFFICIAL)
    assert cfg.train.run_name == "affectgpt_qwen2.5_7b"
    assert (cfg.model.lora_r, cfg.model.lora_alpha, cfg.model.lora_dropout) == (16, 32, 0.05)
    assert cfg.model.lora_targets == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert cfg.model.face_or_frame == "multiface_audio_face_text" and cfg.model.max_length == 1024
    assert (cfg.train.lr, cfg.train.batch_size, cfg.train.iters_per_epoch, cfg.train.epochs) == (1e-5, 3, 5000, 60)
    assert cfg.train.weight_decay == 0.05 and cfg.train.betas == [0.9, 0.999]
    assert len(cfg.data.unibench_roots) == 9
    saved = tmp_path / "config.yaml"
    cfg.save(saved)
    again = load_config(saved)
    assert again == cfg
    assert yaml.safe_load(saved.read_text())["model"]["llm"] == "models/Qwen2.5-7B-Instruct"


def test_demo_config_loads_and_prints():
    cfg = load_config(REPO / "configs" / "demo.yaml", ["train.epochs=2"])
    assert cfg.model.llm == "tiny" and cfg.train.epochs == 2
    text = format_config(cfg)
    assert "[train]" in text and "epochs = 2" in text


def test_defaults_are_independent_instances():
    a, b = Config(), Config()
    a.model.lora_targets.append("x")
    assert "x" not in b.model.lora_targets
