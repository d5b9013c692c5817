"""Image model and text + image fusion on real product photos: 5-fold weighted F1, Markdown tables.

    .venv/bin/python benchmarks/images_real.py                 # every image option (1,553 photos)
    .venv/bin/python benchmarks/images_real.py --fusion        # text vs fused on the 293 with text
    .venv/bin/python benchmarks/images_real.py --multiscale    # multi-scale embeddings, LDA head
    .venv/bin/python benchmarks/images_real.py --heads         # lite1-ms: TTA, crop, size, normalisation, heads
    .venv/bin/python benchmarks/images_real.py --presets       # image-only recipes end to end (photo text or not)
    .venv/bin/python benchmarks/images_real.py --data ../shared/data/rakuten_images --folds 5

Real photos are ``../shared/data/rakuten_images`` (27 classes, 51 to 91 photos a class). Each
(backbone, crop, flip) embedding is computed once and kept in the feature cache
(:class:`prodcat.image.cache.FeatureStore`, under the prodcat cache dir), so the head experiments
that follow are cheap. Folds are stratified with a fixed seed, the same for every option.
CPU seconds per image (process time, all threads) are reported next to wall time, since the
machine may be shared.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "rakuten_images"
SEED = 42


# -- embeddings --------------------------------------------------------------------------------
def load_labels(data: Path) -> pd.DataFrame:
    """labels.csv with an ``image_path`` column (absolute)."""
    frame = pd.read_csv(data / "labels.csv", dtype={"designation": str, "description": str})
    frame["image_path"] = [
        str((data / "images" / f"image_{i}_product_{p}.jpg").resolve()) for i, p in zip(frame.imageid, frame.productid)
    ]
    return frame


def embeddings(paths: list[str], backbone: str, *, crop: bool, flipped: bool) -> tuple[np.ndarray, dict]:
    """``(n, 1280)`` embeddings of one preprocessing variant, from the cache or computed (and cached).

    Returns the vectors and timing facts of what was computed (``n``, wall and CPU seconds).
    """
    from prodcat.image.backbone import Backbone
    from prodcat.image.cache import FeatureStore, FileId
    from prodcat.image.cachedir import default_cache_dir
    from prodcat.image.io import PREPROCESS_VERSION, preprocess

    model = Backbone(backbone)
    tag = f"{model.tag}-{model.input_size}px-p{PREPROCESS_VERSION}"  # the library's tag for crop on, no flip
    if not crop:
        tag += "-nocrop"
    if flipped:
        tag += "-flipped"
    files = [FileId.of(p) for p in paths]
    out = np.zeros((len(paths), model.dim), np.float32)
    timing = {"n": 0, "wall_s": 0.0, "cpu_s": 0.0}
    with FeatureStore(default_cache_dir() / "features", tag=tag, dim=model.dim) as store:
        hits = store.lookup(files)
        todo = [i for i, h in enumerate(hits) if h is None or h.shard is None]
        done = [i for i in range(len(paths)) if i not in set(todo)]
        if done:
            out[done] = store.read([hits[i] for i in done])
        wall, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(todo), 64):
            batch = todo[start : start + 64]
            images = np.stack([preprocess(paths[i], model.input_size, crop=crop) for i in batch])
            if flipped:
                images = np.ascontiguousarray(images[:, :, ::-1])
            vectors = model.embed(images)
            store.put([files[i] for i in batch], vectors)
            out[batch] = vectors
        if todo:
            timing = {"n": len(todo), "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
    return out, timing


def variant(paths: list[str], backbone: str, *, crop: bool, tta: bool) -> np.ndarray:
    """Embeddings of one option; with ``tta`` the mean of the photo's and its mirror image's."""
    vectors, _ = embeddings(paths, backbone, crop=crop, flipped=False)
    if tta:
        vectors = (vectors + embeddings(paths, backbone, crop=crop, flipped=True)[0]) * np.float32(0.5)
    return vectors


# -- cross-validation ----------------------------------------------------------------------------
def splits(y: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=SEED).split(np.zeros(len(y)), y))


def cv_f1(X: np.ndarray, y: np.ndarray, make, folds: list) -> tuple[float, float]:
    """Weighted F1 of out-of-fold predictions (all folds pooled) and the fit seconds per fold."""
    pred = np.zeros_like(y)
    started = time.perf_counter()
    for train, test in folds:
        pred[test] = make().fit(X[train], y[train]).predict(X[test])
    return f1_score(y, pred, average="weighted"), (time.perf_counter() - started) / len(folds)


def mean_log_proba_f1(members: list[np.ndarray], y: np.ndarray, make, folds: list, *, per_fold: bool = False,
                      extra: list[np.ndarray] | None = None, floor: float = 1e-9):
    """Weighted F1 of one head per embedding in ``members``, fused by mean log-probability.

    ``make``: the head factory, or a list of them, one per member. ``extra``: other views of the
    same photos (e.g. mirror images, aligned with ``members``), added as training rows only.
    ``floor``: probabilities are clipped to it before the log. Returns (pooled F1, fit + predict
    seconds per fold[, F1 of each fold]).
    """
    makers = make if isinstance(make, list) else [make] * len(members)
    classes = np.unique(y)
    log_proba = np.zeros((len(y), len(classes)))
    started = time.perf_counter()
    for train, test in folds:
        for k, vectors in enumerate(members):
            X, labels = vectors[train], y[train]
            if extra is not None:
                X, labels = np.vstack([X, extra[k][train]]), np.concatenate([labels, labels])
            head = makers[k]().fit(X, labels)
            log_proba[test] += np.log(np.clip(head.predict_proba(vectors[test]), floor, None))
    pred = classes[log_proba.argmax(axis=1)]
    result = (f1_score(y, pred, average="weighted"), (time.perf_counter() - started) / len(folds))
    if per_fold:
        result += ([f1_score(y[test], pred[test], average="weighted") for _, test in folds],)
    return result


class L2Normalised:
    """Scale each embedding to unit length before a head (an option measured against standardising)."""

    def __init__(self, head) -> None:
        self.head = head

    def fit(self, X, y):
        self.head.fit(_unit(X), y)
        return self

    def predict(self, X):
        return self.head.predict(_unit(X))


def _unit(X: np.ndarray) -> np.ndarray:
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def image_tables(frame: pd.DataFrame, folds: int) -> str:
    """Backbone x crop x TTA with the default head, then heads on the default embedding."""
    from prodcat.models.image import ImageEmbeddingClassifier

    paths, y = list(frame.image_path), frame.prdtypecode.to_numpy()
    parts = splits(y, folds)
    default_c = ImageEmbeddingClassifier().C
    lines = [f"### Image only: {len(y):,} real photos, {len(np.unique(y))} classes, {folds}-fold weighted F1",
             "", f"Head: standardised embedding -> logistic regression, C={default_c}.", "",
             "| backbone | crop white border | TTA (flip) | weighted F1 |", "|---|---|---|---|"]
    for backbone in ("lite0", "lite1", "lite2"):
        for crop in (True, False):
            for tta in (False, True):
                X = variant(paths, backbone, crop=crop, tta=tta)
                f1, _ = cv_f1(X, y, lambda: ImageEmbeddingClassifier(C=default_c), parts)
                lines.append(f"| {backbone} | {'on' if crop else 'off'} | {'on' if tta else 'off'} | {f1:.3f} |")
                print(lines[-1], file=sys.stderr, flush=True)
    X = variant(paths, "lite1", crop=True, tta=False)
    heads = {f"logreg C={c}" + (" (default)" if c == default_c else ""): (lambda c=c: ImageEmbeddingClassifier(C=c))
             for c in (0.5, 0.03, 0.01, 0.003, 0.001)}
    heads[f"L2-normalised, then logreg C={default_c}"] = lambda: L2Normalised(ImageEmbeddingClassifier(C=default_c))
    heads["MLP (512 hidden, early stopping)"] = lambda: ImageEmbeddingClassifier(head="mlp")
    lines += ["", "Heads on lite1, crop on, TTA off (the `image` preset's embedding):", "",
              "| head | weighted F1 | fit s per fold |", "|---|---|---|"]
    for name, make in heads.items():
        f1, seconds = cv_f1(X, y, make, parts)
        lines.append(f"| {name} | {f1:.3f} | {seconds:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    three = {b: variant(paths, b, crop=True, tta=False) for b in ("lite0", "lite1", "lite2")}
    f1, seconds = cv_f1(np.hstack(list(three.values())), y, lambda: ImageEmbeddingClassifier(C=0.001), parts)
    lines.append(f"| lite0 + lite1 + lite2 concatenated, logreg C=0.001 | {f1:.3f} | {seconds:.1f} |")
    f1, seconds = mean_log_proba_f1(list(three.values()), y, lambda: ImageEmbeddingClassifier(C=default_c), parts)
    lines.append(f"| lite0, lite1, lite2 heads, mean log-probability | {f1:.3f} | {seconds:.1f} |")
    return "\n".join(lines)


def multiscale_table(frame: pd.DataFrame, folds: int) -> str:
    """Multi-scale (``-ms``) embeddings, logistic regression vs LDA heads, several backbones, mirror rows."""
    from prodcat.models.image import ImageEmbeddingClassifier

    paths, y = list(frame.image_path), frame.prdtypecode.to_numpy()
    parts = splits(y, folds)
    default_c = ImageEmbeddingClassifier().C
    lines = ["", f"### Multi-scale embeddings and the LDA head: {len(y):,} real photos, {folds}-fold weighted F1", "",
             "`-ms` backbones: the pooled head, then the average-pooled outputs of the last two blocks (same forward "
             "pass); crop on, TTA off. Several heads: one per embedding, mean log-probability.", "",
             "| embedding and head | weighted F1 | F1 of each fold | fit + predict s per fold |", "|---|---|---|---|"]
    heads = {f"logreg C={default_c}": lambda: ImageEmbeddingClassifier(C=default_c),
             "LDA (Ledoit-Wolf shrinkage)": lambda: ImageEmbeddingClassifier(head="lda")}
    X = variant(paths, "lite1", crop=True, tta=False)
    multi = {b: variant(paths, b, crop=True, tta=False) for b in ("lite0-ms", "lite1-ms", "lite2-ms")}
    rows = [(f"lite1 (1280-d), {name}", [X], make) for name, make in heads.items()]
    rows += [(f"{b} ({vectors.shape[1]}-d), {name}", [vectors], make)
             for b, vectors in multi.items() for name, make in heads.items()]
    rows += [(f"lite1-ms + lite2-ms heads, mean log-probability, {name}", [multi["lite1-ms"], multi["lite2-ms"]], make)
             for name, make in heads.items()]
    rows.append(("lite0-ms, lite1-ms, lite2-ms heads, mean log-probability, LDA", list(multi.values()),
                 heads["LDA (Ledoit-Wolf shrinkage)"]))
    for name, members, make in rows:
        f1, seconds, per_fold = mean_log_proba_f1(members, y, make, parts, per_fold=True)
        lines.append(f"| {name} | {f1:.3f} | {' '.join(f'{f:.3f}' for f in per_fold)} | {seconds:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    flipped = embeddings(paths, "lite1-ms", crop=True, flipped=True)[0]
    for name, make in heads.items():
        f1, seconds, per_fold = mean_log_proba_f1([multi["lite1-ms"]], y, make, parts, per_fold=True, extra=[flipped])
        lines.append(f"| lite1-ms, {name}, mirror images as extra training rows | {f1:.3f} | "
                     f"{' '.join(f'{f:.3f}' for f in per_fold)} | {seconds:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


# -- lite1-ms options: preprocessing, normalisation, heads (--heads) -----------------------------
def raw_outputs(paths: list[str], backbone: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and ImageNet logits of ``backbone`` fed ``size`` px squares (crop on, no flip).

    The graph is exported at that size into a temporary folder and run here; the result is kept in
    the prodcat cache dir (``bench/``), keyed by the backbone's fingerprint, size and preprocessing.
    """
    import tempfile

    import onnxruntime as ort

    from prodcat.image.backbone import export_onnx, model_fingerprint
    from prodcat.image.cachedir import default_cache_dir
    from prodcat.image.io import PREPROCESS_VERSION, preprocess
    from prodcat.resources import available_cores

    key = f"{backbone}-{model_fingerprint(backbone)}-{size}px-p{PREPROCESS_VERSION}-n{len(paths)}"
    cached = default_cache_dir() / "bench" / f"{key}.npz"
    if cached.is_file():
        with np.load(cached) as saved:
            if list(saved["paths"]) == paths:
                return saved["embedding"], saved["logits"]
    with tempfile.TemporaryDirectory(prefix="prodcat-bench-") as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = available_cores()
        session = ort.InferenceSession(str(export_onnx(backbone, Path(folder) / "model.onnx", input_size=size)),
                                       options, providers=["CPUExecutionProvider"])
        parts = [session.run(["embedding", "logits"],
                             {"images": np.stack([preprocess(p, size, crop=True) for p in paths[s : s + 16]])})
                 for s in range(0, len(paths), 16)]
    embedding, logits = (np.concatenate([part[k] for part in parts]).astype(np.float32) for k in (0, 1))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.stem}.tmp.npz")
    np.savez(tmp, embedding=embedding, logits=logits, paths=np.array(paths))
    tmp.replace(cached)
    return embedding, logits


class PlainLDA:
    """Standardised embedding -> LDA (Ledoit-Wolf or a fixed shrinkage), softmax of its scores without the
    `lda` head's temperature: the same ranking, hence the same F1, for a quarter of the fit time.
    Several of them summed in log space weigh each equally (temperature 1)."""

    def __init__(self, shrinkage: str | float = "auto") -> None:
        self.shrinkage = shrinkage

    def fit(self, X, y):
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(X)
        self.model = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=self.shrinkage).fit(self.scaler.transform(X), y)
        return self

    def predict_proba(self, X):
        scores = self.model.decision_function(self.scaler.transform(X))
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)


class Projected:
    """Standardise -> LDA projection (classes - 1 dimensions, eigen solver) -> another head."""

    def __init__(self, head) -> None:
        self.head = head

    def fit(self, X, y):
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(X)
        self.lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(self.scaler.transform(X), y)
        self.head.fit(self._z(X), y)
        return self

    def _z(self, X):
        return self.lda.transform(self.scaler.transform(X))

    def predict_proba(self, X):
        return self.head.predict_proba(self._z(X))


class Transformed:
    """A fixed row transform (power normalisation, L2) before a head."""

    def __init__(self, transform, head) -> None:
        self.transform, self.head = transform, head

    def fit(self, X, y):
        self.head.fit(self.transform(X), y)
        return self

    def predict_proba(self, X):
        return self.head.predict_proba(self.transform(X))


def _signed_power(p: float):
    return lambda X: np.sign(X) * np.abs(X) ** p


def heads_table(frame: pd.DataFrame, folds: int) -> str:
    """Options around the `image` preset (lite1-ms + LDA): preprocessing, input size, normalisation,
    heads, ImageNet logits, several embeddings."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC

    from prodcat.models.image import ImageEmbeddingClassifier

    paths, y = list(frame.image_path), frame.prdtypecode.to_numpy()
    parts = splits(y, folds)
    X = variant(paths, "lite1-ms", crop=True, tta=False)
    mirror = embeddings(paths, "lite1-ms", crop=True, flipped=True)[0]
    lda, sqrt = PlainLDA, _signed_power(0.5)
    rows: list[tuple[str, str, list[np.ndarray], list]] = [
        ("**lite1-ms, LDA (the `image` preset)**", "1", [X], [lda]),
        ("crop off", "1", [variant(paths, "lite1-ms", crop=False, tta=False)], [lda]),
        ("TTA: mean embedding of the photo and its mirror", "2", [variant(paths, "lite1-ms", crop=True, tta=True)], [lda]),
        ("crop on and off, mean embedding", "2",
         [(X + variant(paths, "lite1-ms", crop=False, tta=False)) * np.float32(0.5)], [lda]),
        ("photo and mirror, one LDA each, summed log-probabilities", "2", [X, mirror], [lda, lda]),
    ]
    for size in (288, 320):
        rows.append((f"input {size} px instead of 240", f"{(size / 240) ** 2:.2f}", [raw_outputs(paths, "lite1-ms", size)[0]],
                     [lda]))
    rows += [
        ("signed square root, then LDA", "1", [X], [lambda: Transformed(sqrt, PlainLDA())]),
        ("signed power 0.3, then LDA", "1", [X], [lambda: Transformed(_signed_power(0.3), PlainLDA())]),
        ("L2-normalised, then LDA", "1", [X], [lambda: Transformed(_unit, PlainLDA())]),
        ("signed square root + L2, then LDA", "1", [X], [lambda: Transformed(lambda v: _unit(sqrt(v)), PlainLDA())]),
    ]
    rows += [(f"LDA, fixed shrinkage {s} (instead of Ledoit-Wolf)", "1", [X], [lambda s=s: PlainLDA(s)])
             for s in (0.4, 0.6, 0.8)]
    rows += [
        ("signed square root, then logreg C=0.003", "1", [X], [lambda: Transformed(sqrt, ImageEmbeddingClassifier())]),
        ("LDA (with its temperature) + logreg C=0.003, summed log-probabilities", "1", [X, X],
         [lambda: ImageEmbeddingClassifier(head="lda"), lambda: ImageEmbeddingClassifier()]),
        ("LDA projection (26-d), then QDA (reg 0.5)", "1", [X],
         [lambda: Projected(QuadraticDiscriminantAnalysis(reg_param=0.5))]),
        ("LDA projection (26-d), then 15 nearest neighbours", "1", [X],
         [lambda: Projected(KNeighborsClassifier(15, weights="distance"))]),
        ("LDA projection (26-d), then RBF SVM (sigmoid-calibrated)", "1", [X],
         [lambda: Projected(CalibratedClassifierCV(SVC(), ensemble=False))]),
    ]
    logits = raw_outputs(paths, "lite1-ms", 240)[1]
    rows += [
        ("ImageNet logits (1000-d) alone, LDA", "1", [logits], [lda]),
        ("embedding + ImageNet logits concatenated, LDA", "1", [np.hstack([X, logits])], [lda]),
        ("embedding LDA + logits LDA, summed log-probabilities", "1", [X, logits], [lda, lda]),
    ]
    others = {b: variant(paths, b, crop=True, tta=False) for b in ("lite0-ms", "lite2-ms")}
    rows += [
        ("+ lite0-ms, one LDA each, summed log-probabilities", "1 + lite0", [X, others["lite0-ms"]], [lda, lda]),
        ("+ lite2-ms, one LDA each, summed log-probabilities", "1 + lite2", [X, others["lite2-ms"]], [lda, lda]),
        ("+ lite0-ms + lite2-ms, one LDA each, summed log-probabilities", "1 + lite0 + lite2",
         [X, others["lite0-ms"], others["lite2-ms"]], [lda, lda, lda]),
    ]
    lines = ["", f"### Options around the `image` preset: {len(y):,} real photos, {folds}-fold weighted F1", "",
             "lite1-ms, crop on, 240 px, LDA unless the row says otherwise. LDA here is the `lda` head without its "
             "temperature (same ranking); several heads are summed in log space.", "",
             "| option | lite1 passes per photo | weighted F1 | F1 of each fold | fit + predict s per fold |",
             "|---|---|---|---|---|"]
    for name, cost, members, makers in rows:
        f1, seconds, per_fold = mean_log_proba_f1(members, y, makers, parts, per_fold=True, floor=1e-12)
        lines.append(f"| {name} | {cost} | {f1:.3f} | {' '.join(f'{f:.3f}' for f in per_fold)} | {seconds:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def throughput_table(frame: pd.DataFrame, n: int) -> str:
    """Cold-cache `ImageEmbedder` speed on ``n`` photos per backbone, with and without TTA."""
    import tempfile

    from prodcat.image.embed import ImageEmbedder

    paths = list(frame.image_path[:n])
    lines = ["", f"### Embedding cost, cold cache, {n} photos (decode + crop + backbone)", "",
             "| backbone | TTA | images/s (wall) | CPU ms per image (all threads, workers included) |",
             "|---|---|---|---|"]
    for backbone in ("lite0", "lite1", "lite1-ms", "lite2", "lite1-ms+lite2-ms"):
        with tempfile.TemporaryDirectory(prefix="prodcat-bench-") as cache:  # one ONNX export per backbone
            for tta in (False, True) if "-ms" not in backbone else (False,):  # TTA: own cache tag, cold too
                embedder = ImageEmbedder(backbone, cache_dir=cache, tta=tta, progress=False)
                embedder.model  # export or load the ONNX file before timing
                wall, cpu = time.perf_counter(), _cpu_seconds()
                embedder.run(paths)
                wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
                lines.append(f"| {backbone} | {'on' if tta else 'off'} | {n / wall:.0f} | {1000 * cpu / n:.1f} |")
                print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def ocr_throughput(frame: pd.DataFrame, n: int) -> str:
    """Cold-cache OCR speed (the ``image`` preset's photo text) on ``n`` photos."""
    import tempfile

    from prodcat.image.ocr import PhotoTextReader

    paths = list(frame.image_path[:n])
    with tempfile.TemporaryDirectory(prefix="prodcat-bench-") as cache:
        reader = PhotoTextReader(cache)
        reader.read_one(paths[0])  # load the OCR models before timing
        wall, cpu = time.perf_counter(), _cpu_seconds()
        texts = reader.read(paths)
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    with_text = np.mean([bool(t.strip()) for t in texts])
    line = (f"| OCR (rapidocr, photo text) | off | {n / wall:.1f} | {1000 * cpu / n:.1f} |")
    print(line, file=sys.stderr, flush=True)
    return line + f"\n\nOCR found text on {with_text:.0%} of these {n} photos."


def preset_table(frame: pd.DataFrame, folds: int) -> str:
    """Image-only recipes end to end (``ProductClassifier`` on photos with no text), 5-fold."""
    from prodcat import ProductClassifier

    products = pd.DataFrame({"designation": "", "description": "", "image_path": frame.image_path})
    y = frame.prdtypecode.to_numpy()
    parts = splits(y, folds)
    lda = {"name": "image", "kind": "image", "model": "lda"}
    ocr = {"name": "photo_text", "kind": "ocr"}
    auto = {"method": "auto", "folds": 5}
    options = {
        "`image` preset: lite1-ms LDA + lite2-ms LDA (260 px) + photo text (OCR), fusion auto": "image",
        "lite1-ms LDA (240 px) + photo text (OCR), fusion auto": {
            "name": "lite1-ocr", "backbone": "lite1-ms", "components": [lda, ocr], "fusion": auto},
        "lite1-ms LDA alone (240 px, the `image` preset before 2026-12-07)": {
            "name": "lda-only", "backbone": "lite1-ms", "components": [lda]},
    }
    lines = ["", f"### Image-only recipes end to end: {len(y):,} real photos (no text given), {folds}-fold", "",
             "| recipe | weighted F1 | F1 of each fold | fit + predict s per fold | fuser chosen per fold |",
             "|---|---|---|---|---|"]
    for name, preset in options.items():
        pred, fusers = np.zeros_like(y), []
        started = time.perf_counter()
        for train, test in parts:
            model = ProductClassifier(preset, progress=False).fit(products.iloc[train], y[train])
            pred[test] = model.predict(products.iloc[test])
            fusers.append(model.fuser_.describe()["kind"] if model.fuser_ is not None else "-")
        per_fold = " ".join(f"{f1_score(y[t], pred[t], average='weighted'):.3f}" for _, t in parts)
        lines.append(f"| {name} | {f1_score(y, pred, average='weighted'):.3f} | {per_fold} | "
                     f"{(time.perf_counter() - started) / folds:.1f} | {', '.join(fusers)} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


def _cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the decoding workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def fusion_table(frame: pd.DataFrame, folds: int, fusers: tuple[str, ...]) -> str:
    """Text alone (balanced's text component, and ``fast``) vs text + image (``balanced``, each fuser)
    on the products with text."""
    from prodcat import ProductClassifier

    rows = frame[frame.text_kind.notna()].reset_index(drop=True)
    products = pd.DataFrame({"designation": rows.designation.fillna(""), "description": rows.description.fillna(""),
                             "image_path": rows.image_path})
    y = rows.prdtypecode.to_numpy()
    parts = splits(y, folds)
    options = {"text alone (TF-IDF + LinearSVC: balanced's text component)": dict(preset="fast", text_model="linear"),
               "text alone (fast)": dict(preset="fast"), "image alone (image)": dict(preset="image")}
    options.update({f"text + image (balanced, fusion={f})": dict(preset="balanced", fusion=f) for f in fusers})
    options["text + image (balanced, backbone=lite1, fusion=auto)"] = dict(preset="balanced", backbone="lite1",
                                                                           fusion="auto")
    options["text + image (balanced, backbone=lite0-ms, fusion=auto)"] = dict(preset="balanced", backbone="lite0-ms",
                                                                              fusion="auto")
    options["text + image (balanced, backbone=lite0-ms, image head LDA, fusion=auto)"] = dict(
        preset="balanced", backbone="lite0-ms", image_model="lda", fusion="auto")
    lines = ["", f"### Text + image: {len(y)} real products with text and photo, {folds}-fold weighted F1", "",
             "| model | weighted F1 | fit s per fold |", "|---|---|---|"]
    chosen: dict[str, list[str]] = {}
    for name, params in options.items():
        pred = np.zeros_like(y)
        started = time.perf_counter()
        for train, test in parts:
            model = ProductClassifier(**params, progress=False).fit(products.iloc[train], y[train])
            pred[test] = model.predict(products.iloc[test])
            if params.get("fusion") == "auto":
                chosen.setdefault(name, []).append(model.fuser_.describe()["kind"])
        f1 = f1_score(y, pred, average="weighted")
        lines.append(f"| {name} | {f1:.3f} | {(time.perf_counter() - started) / folds:.1f} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines += [""] + [f"Fuser chosen by `auto` in each fold of {name}: {', '.join(kinds)}." for name, kinds in chosen.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with labels.csv and images/")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--images", action="store_true", help="image options only (multi-scale included)")
    parser.add_argument("--fusion", action="store_true", help="text vs text + image only")
    parser.add_argument("--multiscale", action="store_true", help="multi-scale embeddings and LDA heads only")
    parser.add_argument("--presets", action="store_true",
                        help="image-only recipes end to end (the image preset, with and without photo text) only")
    parser.add_argument("--heads", action="store_true",
                        help="options around the image preset only (TTA, crop, input size, normalisation, heads)")
    parser.add_argument("--throughput", type=int, default=0, metavar="N",
                        help="also time cold-cache embedding of N photos per backbone (0: skip)")
    parser.add_argument("--fusers", default="auto,classwise,blend,stack")
    args = parser.parse_args(argv)
    if not (args.data / "labels.csv").is_file():
        print(f"error: {args.data}/labels.csv not found (the shared real photos)", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", category=UserWarning)
    from threadpoolctl import threadpool_limits

    frame = load_labels(args.data)
    tables = []
    with threadpool_limits(1, user_api="blas"):
        if args.heads:
            tables.append(heads_table(frame, args.folds))
        if args.presets or not (args.fusion or args.multiscale or args.heads):
            tables.append(preset_table(frame, args.folds))
        if not (args.fusion or args.multiscale or args.heads or args.presets):
            tables.append(image_tables(frame, args.folds))
        if not (args.fusion or args.heads or args.presets):
            tables.append(multiscale_table(frame, args.folds))
        if not (args.images or args.multiscale or args.heads or args.presets):
            tables.append(fusion_table(frame, args.folds, tuple(args.fusers.split(","))))
    if args.throughput:
        tables.append(throughput_table(frame, args.throughput))
        tables.append(ocr_throughput(frame, min(args.throughput, 100)))
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
