"""Deep text models: scikit-learn behaviour, pickling, time limits, offline loading, and the
pieces they are built from (sparse layer, lazy Adam, validation split, schedules)."""

from __future__ import annotations

import socket
import time

import joblib
import numpy as np
import pytest
from _state import state_round_trip

from prodcat.data.split import validation_split
from prodcat.data.sample import build_demo_table
from prodcat.models.deep_text import (
    DEEP_TEXT_MODELS,
    GRUTextClassifier,
    NeuralTfidfClassifier,
    SentenceEmbeddingClassifier,
    TransformerTextClassifier,
    encode_sentences,
)

torch = pytest.importorskip("torch")
from prodcat.models import torch_utils as tu  # noqa: E402  (imports torch)


@pytest.fixture(scope="module")
def demo():
    table = build_demo_table(n_train=300, n_test=60, seed=0)
    train = table[table["split"] == "train"].reset_index(drop=True)
    test = table[table["split"] == "test"].reset_index(drop=True)
    return train, train["prdtypecode"].to_numpy(), test


def check_fitted(model, train_y, test, tmp_path):
    """Shape, sums, classes_, predict, and identical predictions after a joblib round trip and a
    round trip through the code-free state format (no pickle, caches left out)."""
    proba = model.predict_proba(test)
    assert proba.shape == (len(test), len(np.unique(train_y)))
    assert np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.classes_, np.unique(train_y))
    predicted = model.predict(test)
    np.testing.assert_array_equal(predicted, model.classes_[proba.argmax(axis=1)])
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    loaded = joblib.load(path)
    assert not any(k.startswith("_cache") for k in loaded.__dict__)
    np.testing.assert_array_equal(loaded.predict(test), predicted)
    np.testing.assert_allclose(loaded.predict_proba(test), proba, rtol=1e-5, atol=1e-6)
    safe = state_round_trip(model, tmp_path / "state.npz")  # the code-free format of bundles
    np.testing.assert_allclose(safe.predict_proba(test), proba, rtol=1e-5, atol=1e-6)
    return proba


def check_validation_output(model, train_y):
    """validation_proba_ holds the kept checkpoint's probabilities for validation_index_ rows."""
    index, proba = model.validation_index_, model.validation_proba_
    assert len(index) > 0 and proba.shape == (len(index), len(model.classes_))
    assert np.allclose(proba.sum(axis=1), 1.0)
    codes = np.searchsorted(model.classes_, np.asarray(train_y)[index])
    best = max(h["score"] for h in model.history_)
    assert tu.weighted_f1(codes, proba.argmax(axis=1)) == pytest.approx(best)


def test_registry_names_the_four_models():
    assert DEEP_TEXT_MODELS == {"neural_simple": NeuralTfidfClassifier, "neural_embedding": GRUTextClassifier,
                                "use": SentenceEmbeddingClassifier, "minilm": TransformerTextClassifier}
    for cls in DEEP_TEXT_MODELS.values():
        params = cls().get_params()
        assert {"seed", "time_limit", "progress", "device"} <= set(params)


# --- neural_simple -----------------------------------------------------------------------------


def test_neural_simple_fits_predicts_and_pickles(demo, tmp_path):
    train, y, test = demo
    params = dict(hidden_size=32, epochs=3, batch_size=16, learning_rate=1e-2, n_threads=1)
    model = NeuralTfidfClassifier(**params).fit(train, y)
    proba = check_fitted(model, y, test, tmp_path)
    assert model.weights_["hidden_weight"].shape == (model.n_features_, 32)
    assert 1 <= model.best_epoch_ <= 3 and len(model.history_) <= 3
    check_validation_output(model, y)
    # the demo catalogue is easy: a small net already beats chance by far
    assert (model.classes_[proba.argmax(1)] == test["prdtypecode"].to_numpy()).mean() > 0.3
    # texts work as well as DataFrames, and the same seed gives the same model
    again = NeuralTfidfClassifier(**params).fit(train["designation"].tolist(), y)
    assert again.predict_proba(test["designation"].tolist()).shape == proba.shape
    same = NeuralTfidfClassifier(**params).fit(train, y)
    np.testing.assert_allclose(same.predict_proba(test), proba, rtol=1e-5, atol=1e-6)


def test_neural_simple_time_limit_stops_training(demo):
    train, y, _ = demo
    started = time.perf_counter()
    model = NeuralTfidfClassifier(hidden_size=8, epochs=10_000, batch_size=8, patience=None,
                                  time_limit=1.5, n_threads=1).fit(train, y)
    assert time.perf_counter() - started < 1.5 + 2.0
    assert len(model.history_) < 10_000 and model.fit_seconds_ < 3.5


def test_sparse_matmul_matches_dense_product_and_gradient():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    matrix = sp.random(7, 11, density=0.3, format="csr", dtype=np.float32, random_state=1)
    weight = torch.tensor(rng.normal(size=(11, 5)).astype(np.float32), requires_grad=True)
    out = tu.sparse_matmul(matrix, weight)
    dense = torch.from_numpy(matrix.toarray()) @ weight
    np.testing.assert_allclose(out.detach().numpy(), dense.detach().numpy(), rtol=1e-5, atol=1e-6)
    grad_out = torch.randn(7, 5)
    (grad_sparse,) = torch.autograd.grad(out, weight, grad_out)
    (grad_dense,) = torch.autograd.grad(dense, weight, grad_out)
    np.testing.assert_allclose(grad_sparse.numpy(), grad_dense.numpy(), rtol=1e-5, atol=1e-6)


def test_lazy_adam_equals_adam_on_touched_rows_and_leaves_others():
    torch.manual_seed(0)
    start = torch.randn(6, 3)
    lazy_weight, dense_weight = start.clone(), torch.nn.Parameter(start.clone())
    lazy = tu.LazyAdamRows(lazy_weight, lr=0.01)
    adam = torch.optim.Adam([dense_weight], lr=0.01)
    rows = torch.tensor([1, 4])
    for _ in range(3):
        grad = torch.randn(2, 3)
        lazy.step(rows, grad)
        dense_weight.grad = torch.zeros(6, 3).index_copy_(0, rows, grad)
        adam.step()
    np.testing.assert_allclose(lazy_weight[rows].numpy(), dense_weight.detach()[rows].numpy(), rtol=1e-5, atol=1e-7)
    untouched = torch.tensor([0, 2, 3, 5])
    np.testing.assert_array_equal(lazy_weight[untouched].numpy(), start[untouched].numpy())


# --- neural_embedding ------------------------------------------------------------------------


def test_gru_fits_predicts_and_pickles(demo, tmp_path):
    train, y, test = demo
    model = GRUTextClassifier(embedding_dim=16, hidden_size=8, epochs=1, n_threads=1).fit(train, y)
    check_fitted(model, y, test, tmp_path)
    check_validation_output(model, y)
    assert model.vocabulary_ and min(model.vocabulary_.values()) == 2  # 0: padding, 1: unknown
    ids, lengths = model.token_ids(["", "zzzunseen " * 100, model.clean(train.head(1))[0]])
    assert ids.shape == (3, model.max_length) and lengths[0] == 1 and lengths[1] == model.max_length
    assert set(ids[1]) == {1}  # unknown word, truncated to max_length
    assert model.predict_proba(["", "   "]).shape == (2, len(model.classes_))


def test_gru_time_limit_stops_training(demo):
    train, y, _ = demo
    started = time.perf_counter()
    model = GRUTextClassifier(embedding_dim=8, hidden_size=4, epochs=10_000, batch_size=4, patience=None,
                              time_limit=2.0, n_threads=1).fit(train, y)
    assert time.perf_counter() - started < 2.0 + 2.5
    assert len(model.history_) < 10_000


# --- use -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def use_model(demo):
    train, y, _ = demo
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", lambda *a, **k: pytest.fail("network access"))
        return SentenceEmbeddingClassifier(hidden_size=32, epochs=3, n_threads=1).fit(train, y)


def test_use_fits_predicts_and_pickles_offline(use_model, demo, tmp_path, no_network):
    _, y, test = demo
    check_fitted(use_model, y, test, tmp_path)
    check_validation_output(use_model, y)
    assert use_model.n_train_encoded_ == len(y)


def test_encode_sentences_gives_unit_vectors_and_reuses_duplicates(no_network):
    texts = ["Console portable 4.3 pouces", "<b>Peluche</b> licorne &eacute;toile", "", "Console portable 4.3 pouces"]
    vectors = encode_sentences(texts, batch_size=2, threads=1)
    assert vectors.shape == (4, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(vectors[0], vectors[3])
    # HTML is stripped before encoding
    np.testing.assert_allclose(vectors[1], encode_sentences(["Peluche licorne étoile"], threads=1)[0], atol=1e-6)

    class Expired:
        @staticmethod
        def expired() -> bool:
            return True

    assert np.isnan(encode_sentences(texts, threads=1, deadline=Expired())).all()


def test_use_head_on_precomputed_embeddings(use_model, demo):
    train, y, test = demo
    head = SentenceEmbeddingClassifier(hidden_size=0, epochs=2, n_threads=1)
    head.fit_embeddings(use_model.embed(train), y)
    proba = head.predict_proba_embeddings(use_model.embed(test))
    assert proba.shape == (len(test), len(np.unique(y))) and np.allclose(proba.sum(1), 1.0)
    with pytest.raises(ValueError, match="512"):
        head.predict_proba_embeddings(np.zeros((2, 3)))


def test_use_time_limit_trains_on_the_texts_encoded_in_time(demo, monkeypatch):
    import prodcat.models.sentence as sentence

    class SlowEncoder:  # 0.1 s per batch of 10 texts: 27 batches would take 2.7 s
        def encode(self, texts):
            time.sleep(0.1)
            rows = np.random.default_rng(len(texts)).normal(size=(len(texts), 512)).astype(np.float32)
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    monkeypatch.setattr(sentence, "_encoder", lambda threads: SlowEncoder())
    train, y, _ = demo
    started = time.perf_counter()
    model = SentenceEmbeddingClassifier(hidden_size=8, epochs=1000, patience=None, encode_batch_size=10,
                                        time_limit=1.5, n_threads=1).fit(train, y)
    assert time.perf_counter() - started < 1.5 + 1.0
    assert 0 < model.n_train_encoded_ < len(y)
    assert model.validation_index_.max() < len(y)


# --- minilm ----------------------------------------------------------------------------------------


def test_minilm_stops_within_time_limit_offline(demo, tmp_path, no_network):
    from prodcat.models.transformer import load_encoder, load_tokenizer

    train, y, test = demo
    load_tokenizer(), load_encoder()  # one-time imports (torch, transformers) and disk reads, not timed
    limit = 3.0
    started = time.perf_counter()
    # 200 epochs would take many minutes on a CPU: only the time limit can end this fit early
    model = TransformerTextClassifier(time_limit=limit, epochs=200, max_length=24, batch_size=16, n_threads=2)
    model.fit(train, y)
    elapsed = time.perf_counter() - started
    # loading the weights counts towards the limit, so on a busy machine there may be no time
    # left for a step; validation always runs and the model is usable. The margin is generous:
    # this checks that the budget stops training, not how fast the machine is.
    assert elapsed < limit + 60.0, elapsed
    assert model.epochs_done_ < 200
    assert model.steps_ >= 0 and model.history_
    check_validation_output(model, y)
    check_fitted(model, y, test.head(16), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("frozen_layers", [0, 3])
def test_minilm_learns(demo, no_network, frozen_layers):
    train, y, test = demo
    model = TransformerTextClassifier(epochs=2, max_length=32, batch_size=16, learning_rate=2e-4,
                                      head_learning_rate=5e-3, frozen_layers=frozen_layers).fit(train, y)
    assert model.steps_ >= 10
    assert (model.predict(test) == test["prdtypecode"].to_numpy()).mean() > 0.15  # chance: about 0.05


@pytest.mark.parametrize("layers", [0, 2, 6])
def test_minilm_split_forward_matches_the_full_forward(layers, no_network):
    import torch

    from prodcat.models.transformer import load_encoder, load_tokenizer

    encoded = load_tokenizer()(["red cotton socks for babies", "a novel", "USB charging cable 2 m"],
                               padding=True, return_tensors="pt")
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    net = tu.MeanPoolClassifier(load_encoder(), n_classes=5, dropout=0.1).eval()
    with torch.inference_mode():
        full = net(ids, mask)
        split = net.forward_from(net.bottom_states(ids, mask, layers), mask, layers)
    torch.testing.assert_close(split, full, atol=1e-4, rtol=1e-4)


def test_minilm_rejects_more_frozen_layers_than_it_has(demo, no_network):
    train, y, _ = demo
    with pytest.raises(ValueError, match="frozen_layers"):
        TransformerTextClassifier(frozen_layers=7, epochs=1).fit(train.head(40), y[:40])


def test_minilm_rebuilds_only_a_bert_encoder_from_a_saved_configuration(no_network):
    from prodcat.errors import ModelError
    from prodcat.models.transformer import ENCODER_FIELDS, encoder_from_config

    tiny = dict(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
                hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                max_position_embeddings=16, type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12,
                pad_token_id=0, model_type="bert")
    assert set(ENCODER_FIELDS) < set(tiny)
    # anything beyond the architecture fields (remote code, attention kernels) is ignored
    encoder = encoder_from_config({**tiny, "auto_map": {"AutoModel": "evil--module.Net"},
                                   "attn_implementation": "evil/kernels", "_name_or_path": "/tmp"})
    assert type(encoder).__name__ == "BertModel" and encoder.config.hidden_size == 8
    assert not hasattr(encoder.config, "auto_map")
    with pytest.raises(ModelError, match="not a BERT one"):
        encoder_from_config({**tiny, "model_type": "gpt2"})
    with pytest.raises(ModelError, match="missing hidden_size"):
        encoder_from_config({k: v for k, v in tiny.items() if k != "hidden_size"})


def test_length_grouped_batches_cover_every_row_once():
    lengths = np.random.default_rng(0).integers(1, 60, size=1003)
    batches = tu.length_grouped_batches(lengths, 32, np.random.default_rng(1), group=4)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1003))
    assert max(len(b) for b in batches) == 32


def test_schedule_warms_up_then_decays_to_zero():
    from prodcat.models.transformer import _Schedule

    schedule = _Schedule(100, 0.1)
    factors = [schedule(step) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:])) and factors[100] == 0.0
    schedule.total = 50  # re-planned to fit a time budget
    assert schedule(50) == 0.0


# --- plumbing --------------------------------------------------------------------------------------


def test_validation_split_is_stratified_and_keeps_singletons_in_training():
    codes = np.array([0] * 50 + [1] * 20 + [2])
    train, valid = validation_split(codes, 0.1, seed=0)
    assert sorted(np.concatenate([train, valid]).tolist()) == list(range(len(codes)))
    assert np.bincount(codes[valid], minlength=3).tolist() == [5, 2, 0]
    assert 70 in train
    again = validation_split(codes, 0.1, seed=0)[1]
    np.testing.assert_array_equal(valid, again)
    assert len(validation_split(codes, 0.1, seed=0, max_size=3)[1]) == 3


def test_time_budget_and_bad_inputs(demo):
    with pytest.raises(ValueError):
        tu.TimeBudget(0)
    assert tu.TimeBudget(None).remaining() == float("inf")
    train, y, _ = demo
    with pytest.raises(ValueError, match="labels"):
        NeuralTfidfClassifier().fit(train, y[:-1])
    with pytest.raises(Exception, match="not fitted"):
        GRUTextClassifier().predict(train)
