"""Image feature extractors: the registry, local weights only, and the on-disk cache.

The CNNs get random weights saved to a temporary file: the tests check loading, patch
handling and shapes, not what ImageNet weights would see.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import models

from soscope.errors import SoScopeInputError
from soscope.preprocess import extractors, feature_cache
from soscope.preprocess.extractors import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Handcrafted,
    Pretrained,
    find_weights,
    make_extractor,
)
from soscope.preprocess.feature_cache import cached_features
from soscope.preprocess.image_features import FEATURE_NAMES

IMAGE = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
CENTRES = np.array([[10.0, 12.0], [40.0, 30.0], [63.0, 47.0]])
INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    """(weights file, the same model with its classifier removed) of a random Inception-v3."""
    torch.manual_seed(0)
    model = models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path_factory.mktemp("weights") / "inception.pth"
    torch.save(model.state_dict(), path)
    model.fc = torch.nn.Identity()
    return path, model.eval()


@pytest.fixture(scope="module")
def inception_weights(inception):
    return inception[0]


@pytest.fixture
def hub_dir(tmp_path):
    """An empty torch hub cache, restored afterwards."""
    before = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(before)


def test_inception_pool_features_from_a_local_file(inception):
    path, model = inception
    extractor = make_extractor("inception_v3", weights=path, input_size=75, device="cpu")
    features = extractor.extract(IMAGE, CENTRES, 16, "he.png")
    assert features.shape == (3, 2048) and features.dtype == np.float32
    model.transform_input = True  # as for Google's weights
    patch = (
        torch.from_numpy(IMAGE[4:20, 2:18]).permute(2, 0, 1)[None].float() / 255
    )  # around (10, 12)
    patch = F.interpolate(patch, size=(75, 75), mode="bilinear", antialias=True)
    patch = (patch - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        IMAGENET_STD
    ).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = model(patch)[0].numpy()
    np.testing.assert_allclose(features[0], expected, rtol=1e-4, atol=1e-5)


def test_weights_are_found_in_the_torch_hub_cache(inception_weights, hub_dir, monkeypatch):
    (hub_dir / "checkpoints").mkdir(parents=True)
    (hub_dir / "checkpoints" / INCEPTION_FILE).symlink_to(inception_weights)
    assert find_weights("inception_v3") == hub_dir / "checkpoints" / INCEPTION_FILE
    monkeypatch.setattr(extractors, "Pretrained", lambda name: f"pretrained {name}")
    assert make_extractor("auto") == "pretrained inception_v3"


def test_missing_weights_say_where_to_put_which_file(hub_dir, tmp_path):
    expected = hub_dir / "checkpoints" / INCEPTION_FILE
    url = "https://download.pytorch.org/models/" + INCEPTION_FILE
    with pytest.raises(SoScopeInputError) as caught:
        make_extractor("inception_v3")
    assert caught.value.source == str(expected) and url in caught.value.problem
    assert "never downloads" in caught.value.problem and "features.weights=" in caught.value.problem
    with pytest.raises(
        SoScopeInputError, match=r"mine\.pth: the resnet50 weights file is missing.*resnet50-"
    ):
        make_extractor("resnet50", weights=tmp_path / "mine.pth")
    assert isinstance(make_extractor("auto"), Handcrafted)  # no weights anywhere: weight-free


def test_a_file_of_other_weights_is_refused(inception_weights, tmp_path):
    with pytest.raises(SoScopeInputError, match="is not a state dict of torchvision's resnet50"):
        make_extractor("resnet50", weights=inception_weights)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(SoScopeInputError, match="junk.pth: cannot be read as a PyTorch state dict"):
        make_extractor("inception_v3", weights=tmp_path / "junk.pth")


def test_resnet50_pool_features(tmp_path):
    torch.manual_seed(0)
    torch.save(models.resnet50(weights=None).state_dict(), tmp_path / "resnet.pth")
    extractor = Pretrained("resnet50", tmp_path / "resnet.pth", batch_size=2, input_size=32)
    features = extractor.extract(IMAGE, CENTRES, 16, "he.png")
    assert features.shape == (3, 2048) and np.isfinite(features).all()
    assert not np.allclose(features[0], features[1])


def test_precomputed_and_none(tmp_path):
    np.save(tmp_path / "f.npy", np.arange(12.0).reshape(3, 4))
    features = make_extractor("precomputed", path=tmp_path / "f.npy").extract(None, CENTRES, 8, "")
    np.testing.assert_array_equal(features, np.arange(12.0).reshape(3, 4))
    with pytest.raises(SoScopeInputError, match=r"f\.npy: has 3 rows for the 2 subspots"):
        make_extractor("precomputed", path=tmp_path / "f.npy").extract(None, CENTRES[:2], 8, "")
    np.testing.assert_array_equal(make_extractor("none").extract(None, CENTRES, 8, ""), 0.0)
    with pytest.raises(ValueError, match="unknown image features"):
        make_extractor("vit")


def test_the_cache_serves_a_rerun_and_only_the_same_inputs(tmp_path, monkeypatch):
    extractor = make_extractor("handcrafted")
    first, was_cached = cached_features(extractor, IMAGE, CENTRES, 8, "he.png", tmp_path)
    assert not was_cached and first.shape == (3, len(FEATURE_NAMES))
    assert len(list(tmp_path.glob("handcrafted-*.npy"))) == 1

    def fail(*args):
        raise AssertionError("recomputed")

    monkeypatch.setattr(extractor, "extract", fail)
    again, was_cached = cached_features(extractor, IMAGE, CENTRES, 8, "he.png", tmp_path)
    assert was_cached
    np.testing.assert_array_equal(again, first)
    monkeypatch.undo()
    keys = {
        feature_cache.feature_key(extractor, image, centres, size)
        for image, centres, size in [
            (IMAGE, CENTRES, 8),
            (IMAGE, CENTRES + 1, 8),
            (IMAGE, CENTRES, 9),
            (IMAGE[::-1].copy(), CENTRES, 8),
        ]
    }
    assert len(keys) == 4
    assert feature_cache.feature_key(Handcrafted(batch_size=7), IMAGE, CENTRES, 8) in keys


@pytest.fixture(scope="module")
def small_timm(tmp_path_factory):
    """(weights file, the same network) of a random small timm ViT with a classifier head."""
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    network = timm.create_model("test_vit", pretrained=False, num_classes=5)
    path = tmp_path_factory.mktemp("weights") / "vit.pth"
    torch.save(network.state_dict(), path)
    network.reset_classifier(0)
    return path, network.eval()


def test_timm_features_are_the_models_pooled_output(small_timm, tmp_path):
    path, network = small_timm
    extractor = make_extractor("timm", model="test_vit", weights=path, batch_size=2)
    features = extractor.extract(IMAGE, CENTRES, 16, "he.png")
    assert features.shape == (3, network.num_features) and features.dtype == np.float32
    patch = torch.from_numpy(IMAGE[4:20, 2:18]).permute(2, 0, 1)[None].float() / 255
    patch = F.interpolate(patch, size=(160, 160), mode="bilinear", antialias=True)
    patch = (patch - 0.5) / 0.5  # test_vit's own input size and normalisation
    with torch.inference_mode():
        expected = network(patch)[0].numpy()
    np.testing.assert_allclose(features[0], expected, rtol=1e-4, atol=1e-5)
    from safetensors.torch import save_file

    save_file(network.state_dict(), tmp_path / "vit.safetensors")
    again = make_extractor("timm", model="test_vit", weights=tmp_path / "vit.safetensors")
    np.testing.assert_allclose(again.extract(IMAGE, CENTRES, 16, "he.png"), features, atol=1e-5)
    assert again.settings()["weights"] != extractor.settings()["weights"]


def test_timm_weights_must_be_a_local_file_of_that_model(small_timm, inception, tmp_path):
    with pytest.raises(SoScopeInputError, match=r"uni\.bin: the weights file of timm model"):
        make_extractor("timm", model="test_vit", weights=tmp_path / "uni.bin")
    with pytest.raises(SoScopeInputError, match="is not a state dict of timm's test_resnet"):
        make_extractor("timm", model="test_resnet", weights=small_timm[0])
    with pytest.raises(SoScopeInputError, match="is not a state dict of timm's test_vit"):
        make_extractor("timm", model="test_vit", weights=inception[0])
    with pytest.raises(ValueError, match="features.model"):
        make_extractor("timm", model="no_such_net", weights=small_timm[0])
