"""Speed settings decided per machine (DESIGN.md §9.1): probe mocked both ways, explicit values kept."""
from __future__ import annotations

import warnings

import pytest
import torch

from fashion_edit import hardware
from fashion_edit.config import Params, ParamsError, _validate
from fashion_edit.hardware import HardwareProbe, as_tags, describe, resolve_speed
from fashion_edit.networks import build_inpainter_criterion

ZEN5 = HardwareProbe("cpu", "AVX512", native_bf16=True, threads=2)        # AVX-512 + native bf16
ZEN3 = HardwareProbe("cpu", "AVX2", native_bf16=False, threads=2)         # AVX2 only, bf16 emulated
AVX2_FORCED = HardwareProbe("cpu", "AVX2", native_bf16=True, threads=2)   # ATEN_CPU_CAPABILITY=avx2 on Zen 5
A100 = HardwareProbe("cuda", "AVX512", native_bf16=True, cuda_capability=(8, 0), threads=2)
P100 = HardwareProbe("cuda", "AVX2", native_bf16=False, cuda_capability=(6, 0), threads=2)


@pytest.fixture
def probe_is(monkeypatch: pytest.MonkeyPatch):
    def use(hw: HardwareProbe) -> None:
        monkeypatch.setattr(hardware, "probe", lambda: hw)
    return use


def test_auto_on_a_native_bf16_avx512_cpu_turns_both_on(probe_is):
    probe_is(ZEN5)
    s = resolve_speed("auto", "auto")
    assert (s.bf16, s.channels_last, s.threads) == (True, True, torch.get_num_threads())
    assert s.reasons["bf16"] == "auto: native" and "AVX512" in s.reasons["channels_last"]


def test_auto_on_an_avx2_cpu_without_bf16_turns_both_off(probe_is):
    probe_is(ZEN3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto never warns
        s = resolve_speed("auto", "auto")
    assert (s.bf16, s.channels_last) == (False, False)
    assert s.reasons["bf16"] == "auto: not native" and "AVX2" in s.reasons["channels_last"]


def test_auto_bf16_needs_avx512_even_when_onednn_says_bf16():
    assert resolve_speed("auto", "auto", hw=AVX2_FORCED).bf16 is False


def test_fake_cuda_probe_decides_by_bf16_support_and_compute_capability():
    a100, p100 = resolve_speed("auto", "auto", hw=A100), resolve_speed("auto", "auto", hw=P100)
    assert (a100.bf16, a100.channels_last) == (True, True)
    assert (p100.bf16, p100.channels_last) == (False, False)
    assert "sm_80" in a100.reasons["channels_last"] and "sm_60" in p100.reasons["channels_last"]


def test_explicit_true_on_a_non_native_machine_warns_and_stays_true(probe_is):
    probe_is(ZEN3)
    with pytest.warns(RuntimeWarning, match=r"bf16 is emulated on this CPU \(capability AVX2, no native bf16\).*"
                                            r">10x slower.*vgg\.bf16: auto"):
        s = resolve_speed(True, True)
    assert s.bf16 is True and s.channels_last is True and s.reasons["channels_last"] == "explicit"


def test_explicit_false_stays_false_on_a_native_machine(probe_is):
    probe_is(ZEN5)
    s = resolve_speed(False, False)
    assert (s.bf16, s.channels_last) == (False, False)
    assert s.reasons == {"bf16": "explicit", "channels_last": "explicit", "threads": "auto: torch default"}


def test_bf16_none_means_no_bf16_part_and_never_warns():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_speed(None, "auto", hw=ZEN3).bf16 is False


def test_explicit_threads_are_set(one_thread):
    s = resolve_speed("auto", "auto", threads=1, hw=ZEN5)
    assert s.threads == 1 and torch.get_num_threads() == 1 and s.reasons["threads"] == "explicit"
    with pytest.raises(ValueError, match="threads"):
        resolve_speed("auto", "auto", threads=0, hw=ZEN5)


def test_describe_and_tags_name_the_probe_and_decisions():
    s = resolve_speed("auto", "auto", hw=ZEN3)
    line = describe(s, ZEN3)
    assert line.startswith("speed: cpu AVX2, native bf16 no -> vgg bf16 off (auto: not native), channels_last off")
    assert f"threads {torch.get_num_threads()}" in line
    tags = as_tags(s, ZEN3)
    assert all(key.startswith("speed.") and isinstance(value, str) for key, value in tags.items())
    assert tags["speed.cpu_capability"] == "AVX2" and tags["speed.native_bf16"] == "false"
    assert tags["speed.vgg_bf16"] == "false" and tags["speed.channels_last"] == "false"
    assert as_tags(resolve_speed("auto", "auto", hw=A100), A100)["speed.cuda_capability"] == "8.0"
    assert "cuda sm_80" in describe(resolve_speed("auto", "auto", hw=A100), A100)


def test_real_probe_is_cached_and_answers():
    hw = hardware.probe()
    assert hw is hardware.probe() and hw.device in ("cpu", "cuda") and hw.cpu_capability
    assert isinstance(hw.native_bf16, bool)


@pytest.mark.parametrize("value", ["auto", True, False])
def test_config_accepts_auto_true_false(value):
    p = _validate({"vgg": {"bf16": value}, "train_parser": {"channels_last": value}}, "test")
    assert p.vgg.bf16 == value and p.train_parser.channels_last == value
    assert Params().vgg.bf16 == "auto" and Params().train_inpainter.channels_last == "auto"


def test_config_rejects_other_values_naming_the_key():
    with pytest.raises(ParamsError, match=r"vgg\.bf16: .*expected true, false or auto; got 'fast'"):
        _validate({"vgg": {"bf16": "fast"}}, "test")
    with pytest.raises(ParamsError, match=r"train_inpainter\.channels_last: .*got 'fast'"):
        _validate({"train_inpainter": {"channels_last": "fast"}}, "test")


def test_inpainter_criterion_gets_plain_false_bf16_on_an_avx2_probe(probe_is):
    probe_is(ZEN3)
    criterion = build_inpainter_criterion(Params())
    assert criterion.vgg is not None and criterion.vgg_bf16 is False
    probe_is(ZEN5)
    assert build_inpainter_criterion(Params()).vgg_bf16 is True
