"""Local Hugging Face checkpoints as the transformer's backbone, and device choice (CPU only:
CUDA is simulated with monkeypatch, never required)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prodcat.cli import main  # noqa: E402
from prodcat.components import DeepTextSpec  # noqa: E402
from prodcat.components.base import SpecError  # noqa: E402
from prodcat.data.sample import build_demo_table, make_demo_dataset  # noqa: E402
from prodcat.errors import ModelError, ProdcatError  # noqa: E402
from prodcat.models import torch_utils as tu  # noqa: E402
from prodcat.models.transformer import TransformerTextClassifier, model_path, resolve_backbone  # noqa: E402
from prodcat.predictor import ProductClassifier  # noqa: E402


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A user's own checkpoint folder: links to the bundled MiniLM's files (removable by the test)."""
    folder = tmp_path / "my-checkpoint"
    folder.mkdir()
    for file in Path(model_path()).iterdir():
        if file.is_file():
            (folder / file.name).symlink_to(file)
    return folder


def tiny_fit(**params) -> tuple[TransformerTextClassifier, object]:
    table = build_demo_table(n_train=60, n_test=10, seed=0)
    train = table[table["split"] == "train"].reset_index(drop=True)
    test = table[table["split"] == "test"].reset_index(drop=True)
    model = TransformerTextClassifier(epochs=1, max_length=16, batch_size=16, evaluations=1, n_threads=1,
                                      device="cpu", **params)
    return model.fit(train, train["prdtypecode"].to_numpy()), test


# --- backbone ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["camembert-base", "org/name", "almanach/camembert-base"])
def test_hub_names_are_refused_without_network(name, no_network, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="never downloads") as info:
        resolve_backbone(name)
    assert repr(name) in str(info.value)


def test_a_folder_without_a_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="no usable model.*weights.*tokenizer"):
        resolve_backbone(tmp_path)


def test_a_folder_with_broken_files_is_a_clear_error(tmp_path, no_network):
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("not what it should be")
    with pytest.raises(ModelError, match="cannot load"):
        tiny_fit(backbone=str(tmp_path))


def test_default_backbone_is_the_bundled_minilm():
    assert resolve_backbone(None) == model_path()
    assert TransformerTextClassifier().backbone is None


def test_fit_on_a_local_checkpoint_records_it_and_reloads_from_it(checkpoint, tmp_path, no_network):
    model, test = tiny_fit(backbone=str(checkpoint), time_limit=30)
    assert model.backbone_path_ == str(checkpoint.resolve())
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), len(model.classes_)) and np.allclose(proba.sum(axis=1), 1)
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    loaded.encoder_config_ = {}  # the network is shaped by the checkpoint's own config.json
    np.testing.assert_allclose(loaded.predict_proba(test), proba, atol=1e-5)
    # the checkpoint is gone: the reloaded model says which folder it needs
    for link in checkpoint.iterdir():
        link.unlink()
    checkpoint.rmdir()
    gone = joblib.load(tmp_path / "model.joblib")
    with pytest.raises(ModelError, match=f"trained with the text backbone {checkpoint.resolve()}.*no longer"):
        gone.predict_proba(test)


def test_default_fit_keeps_no_path(no_network):
    model, _ = tiny_fit(time_limit=20)
    assert model.backbone_path_ is None  # the bundled MiniLM: found again wherever prodcat is installed


def test_a_preset_parameter_names_the_backbone(checkpoint):
    spec = DeepTextSpec(name="minilm", model="minilm", params={"backbone": str(checkpoint)})
    assert spec.params["backbone"] == str(checkpoint)
    with pytest.raises(SpecError, match="params.backbone"):
        DeepTextSpec(name="minilm", model="minilm", params={"backbone": 3})
    with pytest.raises(SpecError, match="params.backbone"):
        DeepTextSpec(name="t", model="neural_simple", params={"backbone": str(checkpoint)})
    recipe = {"name": "mine", "components": [{"name": "t", "kind": "deep_text", "model": "minilm",
                                              "params": {"backbone": "camembert-base"}}]}
    with pytest.raises(ModelError, match="never downloads"):  # refused before training
        ProductClassifier(recipe).resolved_spec()


def test_predictor_sets_the_backbone_of_transformer_components(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(checkpoint.parent)
    spec = ProductClassifier("best", text_backbone=checkpoint.name, progress=False).resolved_spec()
    assert spec.component("minilm").params == {"epochs": 6, "evaluations": 4, "backbone": str(checkpoint)}  # absolute
    assert "backbone" not in spec.component("neural_simple").params
    spec = ProductClassifier("fast", text_model="minilm", text_backbone=str(checkpoint)).resolved_spec()
    assert spec.component("text").params["backbone"] == str(checkpoint)
    with pytest.raises(ModelError, match="needs a transformer component.*--text-model minilm"):
        ProductClassifier("fast", text_backbone=str(checkpoint)).resolved_spec()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=60, n_test=10, seed=1,
                             with_images=False, progress=False)


@pytest.mark.parametrize("argv, message", [
    (["--text-model", "minilm", "--text-backbone", "camembert-base"], "never downloads"),
    (["--text-model", "minilm", "--text-backbone", "{tmp}"], "no usable model"),
    (["--text-backbone", "{checkpoint}"], "needs a transformer component"),
])
def test_cli_refuses_bad_backbones_in_one_line(argv, message, demo, checkpoint, tmp_path, capsys, no_network):
    argv = [a.format(tmp=tmp_path, checkpoint=checkpoint) for a in argv]
    code = main(["train", "--x", str(demo.x_train), "--y", str(demo.y_train), "--runs-dir", str(tmp_path / "runs"),
                 *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()  # refused before training


def test_cli_trains_on_a_local_checkpoint_and_the_bundle_remembers_it(demo, checkpoint, tmp_path, no_network):
    out = tmp_path / "bundle"
    assert main(["train", "--x", str(demo.x_train), "--y", str(demo.y_train), "--text-model", "minilm",
                 "--text-backbone", str(checkpoint), "--device", "cpu", "--time-limit", "20", "--valid-size", "0",
                 "--out", str(out), "--runs-dir", str(tmp_path / "runs")]) == 0
    model = ProductClassifier.load(out)
    assert model.spec.component("text").params["backbone"] == str(checkpoint.resolve())
    assert model.predict_proba(["red cotton socks"]).shape == (1, len(model.classes_))


# --- devices -------------------------------------------------------------------------------------


def test_auto_picks_cuda_only_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert tu.resolve_device("auto").type == "cuda" and tu.resolve_device(None).type == "cuda"
    assert tu.resolve_device("cuda").type == "cuda" and tu.resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tu.resolve_device("auto").type == "cpu"


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ProdcatError, match="no CUDA GPU"):
        tu.resolve_device("cuda")
    with pytest.raises(ProdcatError, match="unknown device"):
        tu.resolve_device("tpu")
    with pytest.raises(ProdcatError, match="no CUDA GPU"):
        ProductClassifier("best", device="cuda").resolved_spec()
    assert tu.inference_device("cuda").type == "cpu"  # a GPU-trained model still predicts on a CPU


def test_mixed_precision_type(monkeypatch):
    assert tu.autocast_dtype(torch.device("cpu")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert tu.autocast_dtype(torch.device("cuda")) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert tu.autocast_dtype(torch.device("cuda")) == torch.float16


def test_device_reaches_every_torch_component(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    spec = ProductClassifier("best", device="cuda").resolved_spec()
    with_device = {c.name for c in spec.components if getattr(c, "params", {}).get("device") == "cuda"}
    assert with_device == {"neural_simple", "minilm", "early_fusion"}
    with pytest.raises(SpecError, match="params.device"):
        DeepTextSpec(name="t", model="minilm", params={"device": "gpu"})


def test_cli_refuses_cuda_without_a_gpu(demo, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main(["train", "--x", str(demo.x_train), "--y", str(demo.y_train), "--text-model", "minilm",
                 "--device", "cuda", "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "no CUDA GPU" in err and len(err.splitlines()) == 1
