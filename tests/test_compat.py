"""The original's API: two_step_train + infer with its NB demo YAML files, unchanged."""

import numpy as np
import pytest
import torch

from soscope import infer, two_step_train
from soscope.data.reference_io import write_reference_dir
from soscope.errors import SoScopeInputError
from soscope.predictor import Predictor

# The original's NB demo configs, verbatim in content (9 genes, 7 subspots, 2048-d features).
VGAE_YML = """trainer: VGAETrainer_NB
params:
  # Number of latent dimensions
  gene_dim: 9
  sub_node: 7
  sub_dim: 2048
  z_dim: 128
  optimizer_name: 'Adam'
  scale: 10
  lr: 0.00_1
  beta_start_value: 1
  beta_end_value: 1
  beta_n_iterations: 10000
  beta_start_iteration: 5000
"""
SOSCOPE_YML = """trainer: soScope_NB
params:
  # Number of latent dimensions
  gene_dim: 9
  sub_node: 7
  sub_dim: 2048
  z_dim: 128
  optimizer_name: 'Adam'
  scale: 1
  lr: 0.00_05
  gamma_start_value: 1
  gamma_end_value: 0.01
  beta_start_value: 1
  beta_end_value: 1
  beta_n_iterations: 10000
  beta_start_iteration: 5000
"""


@pytest.fixture
def original_layout(tmp_path, tiny_tissue):
    """A tiny dataset directory in the original's format with Inception-sized features."""
    graph = tiny_tissue.graph.clone()
    generator = torch.Generator().manual_seed(0)
    graph.sub_feat = torch.rand(graph.sub_feat.size(0), 2048, generator=generator)
    data_dir = tmp_path / "data"
    write_reference_dir(graph, data_dir)
    (tmp_path / "VGAE.yml").write_text(VGAE_YML)
    (tmp_path / "soScope.yml").write_text(SOSCOPE_YML)
    return tmp_path, graph


def train(tmp_path, epochs=(3, 3), **overrides):
    args = {
        "logging": None,
        "vgae_experiment_dir": str(tmp_path / "exp_vgae"),
        "soScope_experiment_dir": str(tmp_path / "exp_soscope"),
        "data_dir": str(tmp_path / "data") + "/",
        "vgae_config_file": str(tmp_path / "VGAE.yml"),
        "soScope_config_file": str(tmp_path / "soScope.yml"),
        "device": "cpu",
        "checkpoint_every": 2,
        "backup_every": 2,
        "epochs": list(epochs),
        "num_neighbors": 6,
    }
    return two_step_train(**{**args, **overrides})


def test_two_step_train_and_infer_with_the_original_nb_configs(original_layout):
    tmp_path, graph = original_layout
    model = train(tmp_path)
    for stage in ("exp_vgae", "exp_soscope"):
        files = {p.name for p in (tmp_path / stage).iterdir()}
        # checkpoints after epochs 0 and 2, the backup and the copied config
        assert {"config.yml", "model.pt", "checkpoint_1.pt", "checkpoint_2.pt"} <= files
    saved = torch.load(tmp_path / "exp_soscope" / "model.pt", weights_only=False)
    assert saved["iterations"] == 3  # written after the last epoch, not the last backup (epoch 2)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(saved["state_dict"][name], value)

    result = infer(
        experiment_dir=str(tmp_path / "exp_soscope"),
        non_negative=True,
        num_neighbors=6,
        data_dir=str(tmp_path / "data") + "/",
        result_dir=str(tmp_path / "result"),
        device="cpu",
    )
    written = np.load(tmp_path / "result" / "infer_subspot.npy")
    assert written.shape == (graph.num_spots * 7, 9)
    np.testing.assert_array_equal(written, result)
    assert (written >= 0).all()
    np.testing.assert_allclose(
        written, Predictor(model, graph).enhance().numpy(), rtol=1e-5, atol=1e-6
    )

    # The original's README passes what two_step_train returned as saved_model.
    given = infer(
        str(tmp_path / "exp_soscope"),
        True,
        6,
        str(tmp_path / "data"),
        str(tmp_path / "result_given"),
        "cpu",
        model,
    )
    np.testing.assert_array_equal(given, written)

    earlier = infer(
        str(tmp_path / "exp_soscope"),
        False,
        6,
        str(tmp_path / "data"),
        str(tmp_path / "result_ckpt"),
        "cpu",
        saved_model="checkpoint_1.pt",
    )
    assert not np.allclose(earlier, written)


def test_logging_writes_tensorboard_events(original_layout):
    tmp_path, _ = original_layout
    train(tmp_path, epochs=(1, 1), logging=True)
    assert list((tmp_path / "exp_soscope").rglob("events.out.tfevents.*"))


def test_configs_that_do_not_fit_the_data_are_refused(original_layout):
    tmp_path, _ = original_layout
    (tmp_path / "soScope.yml").write_text(SOSCOPE_YML.replace("sub_node: 7", "sub_node: 9"))
    with pytest.raises(SoScopeInputError, match=r"soScope\.yml.*sub_node"):
        train(tmp_path)
    (tmp_path / "soScope.yml").write_text(SOSCOPE_YML.replace("soScope_NB", "soScope_ZINB"))
    with pytest.raises(SoScopeInputError, match="unknown trainer"):
        train(tmp_path)
    (tmp_path / "soScope.yml").write_text(SOSCOPE_YML + "  dropout: 0.1\n")
    with pytest.raises(SoScopeInputError, match="unknown parameters: dropout"):
        train(tmp_path)


def test_infer_without_a_trained_model_says_so(tmp_path):
    with pytest.raises(SoScopeInputError, match="model file not found"):
        infer(str(tmp_path), True, 6, str(tmp_path), str(tmp_path / "out"), "cpu")


def test_infer_names_a_saved_model_it_cannot_use(tmp_path):
    with pytest.raises(SoScopeInputError, match="saved_model: expected what two_step_train"):
        infer(str(tmp_path), True, 6, str(tmp_path), str(tmp_path / "out"), "cpu", 3)
