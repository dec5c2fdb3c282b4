"""The typed params loader: the repo's params.yaml is valid; bad keys fail naming the key."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fashion_edit.config import Params, ParamsError, load_params

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = REPO_PARAMS.read_text()
    assert old in text, f"fixture out of date: {old!r} not in params.yaml"
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_repository_params_load_and_every_section_is_present() -> None:
    params = load_params(REPO_PARAMS)
    assert isinstance(params, Params)
    text = REPO_PARAMS.read_text()
    for section in Params.model_fields:
        assert f"\n{section}:" in f"\n{text}", f"params.yaml lacks section {section!r}"


def test_unknown_key_fails_naming_it(tmp_path: Path) -> None:
    path = _edited(tmp_path, "  canny_low: 100\n", "  canny_low: 100\n  canny_lowww: 5\n")
    with pytest.raises(ParamsError, match=r"preprocess\.canny_lowww: unknown key"):
        load_params(path)


def test_unknown_section_fails_naming_it(tmp_path: Path) -> None:
    path = _edited(tmp_path, "masks:\n", "maskz: {}\nmasks:\n")
    with pytest.raises(ParamsError, match=r"maskz: unknown key"):
        load_params(path)


def test_wrong_type_fails_naming_the_key(tmp_path: Path) -> None:
    path = _edited(tmp_path, "  box_prob: 0.3", "  box_prob: often")
    with pytest.raises(ParamsError, match=r"masks\.box_prob"):
        load_params(path)


def test_out_of_range_fails_naming_the_key(tmp_path: Path) -> None:
    path = _edited(tmp_path, "  garment_prob: 0.2", "  garment_prob: 1.5")
    with pytest.raises(ParamsError, match=r"masks\.garment_prob: .*less than or equal to 1"):
        load_params(path)


def test_invalid_choice_fails_naming_the_key(tmp_path: Path) -> None:
    path = _edited(tmp_path, "  source: synthetic", "  source: imagenet")
    with pytest.raises(ParamsError, match=r"data\.source: invalid value 'imagenet'"):
        load_params(path)


def test_inconsistent_mask_bounds_fail_naming_them(tmp_path: Path) -> None:
    path = _edited(tmp_path, "  min_vertices: 4", "  min_vertices: 40")
    with pytest.raises(ParamsError, match=r"masks\.min_vertices must be <= masks\.max_vertices"):
        load_params(path)


def test_split_fractions_must_leave_training_data(tmp_path: Path) -> None:
    path = _edited(tmp_path, "    val: 0.05", "    val: 0.95")
    with pytest.raises(ParamsError, match=r"preprocess\.split"):
        load_params(path)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "absent.yaml")
    (tmp_path / "broken.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "broken.yaml")


def test_ablation_variant_applies_and_validates_overrides() -> None:
    params = load_params(REPO_PARAMS)
    name = next(iter(params.ablations))
    assert isinstance(params.variant(name), Params)
    with pytest.raises(ParamsError, match="unknown variant"):
        params.variant("no-such-variant")


def test_ablations_written_as_a_list_fails_naming_the_shape(tmp_path: Path) -> None:
    raw = yaml.safe_load(REPO_PARAMS.read_text())
    raw["ablations"] = [{name: overrides} for name, overrides in raw["ablations"].items()]  # `- name: {...}`
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ParamsError) as error:
        load_params(path)
    message = str(error.value)
    assert "ablations: expected a mapping of variant name -> overrides mapping, found a list" in message
    assert "no_prefill: {inpainter: {prefill: false}}" in message  # an example of the right shape


def test_ablation_variant_that_is_not_a_mapping_fails_naming_it(tmp_path: Path) -> None:
    path = _edited(tmp_path, "  no_prefill: {inpainter: {prefill: false}}", "  no_prefill: inpainter.prefill=false")
    with pytest.raises(ParamsError, match=r"ablations\.no_prefill: expected a mapping of overrides, found a str "
                                          r"'inpainter\.prefill=false' \(e\.g\. "):
        load_params(path)


def test_a_missing_section_or_key_fails_instead_of_using_the_codes_defaults(tmp_path: Path) -> None:
    data = yaml.safe_load(REPO_PARAMS.read_text())
    del data["train_inpainter"]  # the code's defaults (300 steps, batch 8) are not the file's
    del data["evaluate"]["bootstrap_resamples"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"missing train_inpainter, evaluate\.bootstrap_resamples; every value"):
        load_params(path)


def test_a_dataset_path_with_the_synthetic_source_is_refused(tmp_path):
    """data.root alone would be ignored: the run would train on synthetic figures and say nothing."""
    from tests.conftest import tiny_params

    params = tiny_params().model_dump(mode="json")
    params["data"]["root"] = "/datasets/lip"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"data\.source is synthetic, which reads no files, but \{'root': '/datasets/lip'\}"):
        load_params(path)
