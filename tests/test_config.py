"""The recipe loader: PaddleClas YAML in, typed config out, and every mistake named by its key."""

from pathlib import Path

import pytest
import yaml

from ppipe.config import ConfigError, config_to_data, load_config

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def _quickstart() -> dict:
    return yaml.safe_load(QUICKSTART.read_text())


def test_quickstart_recipe_loads_into_typed_sections():
    cfg = load_config(QUICKSTART)
    assert cfg.Arch.name == "PPLCNet_x0_25"
    assert cfg.num_classes == 10
    assert cfg.Optimizer.lr.name == "Cosine" and cfg.Optimizer.lr.warmup_epoch == 2
    assert cfg.DataLoader.Train.sampler.batch_size == 32
    assert cfg.Ray.num_workers == 2


def test_paddleclas_number_expressions_are_evaluated():
    cfg = load_config(QUICKSTART)
    normalize = [op for op in cfg.DataLoader.Train.dataset.transform_ops if "NormalizeImage" in op][0]
    assert normalize["NormalizeImage"]["scale"] == pytest.approx(1 / 255)


def test_overrides_set_nested_keys_and_list_items():
    cfg = load_config(QUICKSTART, ["Global.epochs=3", "Optimizer.lr.learning_rate=0.05",
                                   "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=24"])
    assert cfg.Global.epochs == 3
    assert cfg.Optimizer.lr.learning_rate == 0.05
    assert cfg.DataLoader.Train.dataset.transform_ops[1]["RandCropImage"]["size"] == 24


def test_unknown_key_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"Global\.epochz.*epochs"):
        load_config(QUICKSTART, ["Global.epochz=3"])
    with pytest.raises(ConfigError, match=r"unknown key Bogus"):
        load_config(QUICKSTART, ["Bogus.x=1"])


def test_wrong_type_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"Global\.epochs: expected an integer"):
        load_config(QUICKSTART, ["Global.epochs=three"])
    with pytest.raises(ConfigError, match=r"Optimizer\.name: expected one of"):
        load_config(QUICKSTART, ["Optimizer.name=Adagrad"])


def test_unknown_transform_operator_is_named():
    with pytest.raises(ConfigError, match=r"DataLoader\.Train\.dataset\.transform_ops.*NoSuchOp"):
        load_config(QUICKSTART, ["DataLoader.Train.dataset.transform_ops.1={NoSuchOp: {}}"])


def test_unknown_loss_and_loss_parameter_are_named():
    with pytest.raises(ConfigError, match=r"Loss\.Train: unknown loss 'FocalLoss'"):
        load_config(QUICKSTART, ["Loss.Train=[{FocalLoss: {weight: 1.0}}]"])
    with pytest.raises(ConfigError, match=r"Loss\.Train\.CELoss\.epsylon"):
        load_config(QUICKSTART, ["Loss.Train=[{CELoss: {weight: 1.0, epsylon: 0.1}}]"])


def test_unknown_architecture_lists_close_names():
    with pytest.raises(ConfigError, match=r"Arch\.name.*PPLCNet_x0_25"):
        load_config(QUICKSTART, ["Arch.name=PPLCNet_x0_2"])


def test_settings_ppipe_cannot_honour_are_rejected_with_reason():
    with pytest.raises(ConfigError, match=r"AMP\.use_amp.*gpu"):
        load_config(QUICKSTART, ["AMP.use_amp=true"])
    with pytest.raises(ConfigError, match=r"Global\.use_dali"):
        load_config(QUICKSTART, ["Global.use_dali=true"])


def test_missing_or_malformed_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("Global: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(bad)


def test_override_syntax_errors_are_named():
    with pytest.raises(ConfigError, match=r"expected Section\.key=value"):
        load_config(QUICKSTART, ["Global.epochs"])
    with pytest.raises(ConfigError, match=r"not an index"):
        load_config(QUICKSTART, ["DataLoader.Train.dataset.transform_ops.9.X=1"])


def test_arch_constructor_arguments_round_trip():
    data = _quickstart()
    data["Arch"]["dropout_prob"] = 0.1
    cfg = load_config(data=data)
    assert cfg.Arch.kwargs == {"dropout_prob": 0.1}
    again = load_config(data=config_to_data(cfg))
    assert again == cfg


def test_paddleclas_recipe_shape_is_accepted():
    """A recipe written for PaddleClas (its Global/AMP/Infer keys, ImageNetDataset) loads unchanged."""
    data = _quickstart()
    data["Global"].update({"checkpoints": None, "pretrained_model": None, "save_interval": 1,
                           "use_visualdl": False, "save_inference_dir": "./inference", "class_num": 10})
    data["AMP"] = {"use_amp": False, "use_fp16_test": False, "scale_loss": 128.0,
                   "use_dynamic_loss_scaling": True, "use_promote": False, "level": "O1"}
    data["DataLoader"]["Train"]["dataset"].update({"name": "ImageNetDataset", "image_root": "./d/",
                                                    "cls_label_path": "./d/train_list.txt"})
    data["DataLoader"]["Train"]["loader"] = {"num_workers": 4, "use_shared_memory": True}
    data["Infer"] = {"infer_imgs": "demo.jpg", "batch_size": 10, "transforms": [{"ToCHWImage": None}],
                     "PostProcess": {"name": "Topk", "topk": 5}}
    cfg = load_config(data=data)
    assert cfg.DataLoader.Train.dataset.name == "ImageNetDataset"
    assert cfg.AMP.scale_loss == 128.0
