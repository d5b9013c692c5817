"""Code-free storage of fitted models: JSON structure + numpy arrays, never pickle.

``save_state(obj, path)`` writes one ``.npz`` file: every numeric or text array of the object
graph is a plain npz member, and the structure (dicts, lists, scalars, which class each object
is and its attributes) is a JSON document stored as one more member. ``load_state(path)`` reads
it back with ``allow_pickle=False`` and rebuilds objects only for the classes named in
:data:`TRUSTED_TYPES` (scikit-learn estimators, numpy/scipy containers and prodcat's own
models), by ``cls.__new__`` plus their attribute dict: no constructor, no ``__reduce__``, no
import of anything else. A file naming any other class, or holding anything the format does not
know, is refused with :class:`UnsafeStateError`; so is saving an object the format cannot hold
(e.g. a torch module or a function), which keeps unsafe content out of bundles in the first place.

Why not skops: it stores a vocabulary dict key by key, 3 s for 10,000 TF-IDF terms (minutes for
a real vocabulary); here a ``str -> int`` dict becomes two arrays.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from prodcat.errors import ModelError

STATE_FORMAT = "prodcat-state/1"
_STRUCTURE = "__structure__"
_BIG_DICT = 64  # str -> int dicts at least this long are stored as two arrays

TRUSTED_TYPES: frozenset[str] = frozenset({
    # prodcat's own models (attributes only; their code is the installed prodcat)
    "prodcat.models.text.TextClassifier",
    "prodcat.models.text._SoftmaxScores",
    "prodcat.models.text_stack.StackedTextClassifier",
    "prodcat.models.hierarchical.HierarchicalTextClassifier",
    "prodcat.models.image.ImageEmbeddingClassifier",
    "prodcat.models.image.PixelHistogramClassifier",
    "prodcat.models.photo_text.PhotoTextClassifier",
    "prodcat.models.fusion.StackingFuser",
    "prodcat.models.fusion.BlendFuser",
    "prodcat.models.fusion._Stack",
    "prodcat.models.fusion._Blend",
    "prodcat.models.fusion.ClasswiseFuser",
    "prodcat.models.fusion._Classwise",
    "prodcat.models.fusion.GuardedFuser",
    # torch-based models: their weights are NumPy arrays (``weights_``); networks, tokenizers and
    # encoders are caches rebuilt from the installed packages, never stored (see models/deep_base.py)
    "prodcat.models.deep_text.NeuralTfidfClassifier",
    "prodcat.models.deep_text.GRUTextClassifier",
    "prodcat.models.sentence.SentenceEmbeddingClassifier",
    "prodcat.models.transformer.TransformerTextClassifier",
    "prodcat.models.early_fusion.EarlyFusionClassifier",
    # scikit-learn estimators and the helpers they keep after fit
    "sklearn.feature_extraction.text.TfidfVectorizer",
    "sklearn.feature_extraction.text.TfidfTransformer",
    "sklearn.feature_extraction.text.CountVectorizer",
    "sklearn.svm._classes.LinearSVC",
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._logistic.LogisticRegressionCV",
    "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.preprocessing._label.LabelBinarizer",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.decomposition._truncated_svd.TruncatedSVD",
    "sklearn.naive_bayes.MultinomialNB",
    "sklearn.naive_bayes.ComplementNB",
    "sklearn.linear_model._stochastic_gradient.SGDClassifier",
    "sklearn.linear_model._ridge.RidgeClassifier",
    "sklearn.pipeline.Pipeline",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.model_selection._split.KFold",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
})
"""Classes a state file may name. Anything else is refused on save and on load."""

# Compiled classes rebuilt from constructor arguments plus state (their pickle protocol), with
# both checked to be plain data: scikit-learn's tree structure.
TRUSTED_REDUCE: frozenset[str] = frozenset({"sklearn.tree._tree.Tree"})

# Types (not instances) that estimators keep as parameters, e.g. TfidfVectorizer(dtype=np.float32).
_TRUSTED_TYPE_VALUES: dict[str, type] = {
    f"numpy.{t.__name__}": t for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                       np.int64, np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)
} | {f"builtins.{t.__name__}": t for t in (int, float, bool, str)}

_SPARSE = {"csr_matrix": sp.csr_matrix, "csc_matrix": sp.csc_matrix, "csr_array": sp.csr_array,
           "csc_array": sp.csc_array}


_REGISTERED: dict[str, type] = {}
"""Classes trusted at run time by the code that defines them (:func:`trust`), e.g. the estimator of
a component registered outside prodcat. Only code already running can add to it: a state file cannot."""


def trust(*classes: type) -> None:
    """Let instances of ``classes`` be stored in and read from state files (their attributes only;
    their code is the caller's). For estimators of components registered outside prodcat."""
    for cls in classes:
        _REGISTERED[qualified_name(cls)] = cls


def is_trusted(name: str) -> bool:
    """True for a class name a state file may hold objects of."""
    return name in TRUSTED_TYPES or name in _REGISTERED


class UnsafeStateError(ModelError):
    """A state file names something outside the trusted types, or an object cannot be stored safely."""


def qualified_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class _Writer:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, value: np.ndarray) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = value
        return key

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and type(obj) is int:
            return obj if abs(obj) < 2**53 else {"t": "bigint", "v": str(obj)}
        if type(obj) is float:
            return obj if np.isfinite(obj) else {"t": "float", "v": repr(obj)}
        if isinstance(obj, np.generic):
            if obj.dtype.kind not in "biufc":
                raise UnsafeStateError(f"{where}: cannot store a numpy {obj.dtype} scalar in a safe bundle")
            return {"t": "np", "dtype": obj.dtype.str, "a": self.array(np.asarray(obj))}
        if isinstance(obj, np.ndarray):
            if obj.dtype.kind in "biufcU":
                return {"t": "nd", "a": self.array(obj)}
            if obj.dtype.kind == "V" and obj.dtype.names and obj.ndim == 1:
                fields = {}
                for name in obj.dtype.names:
                    if obj.dtype.fields[name][0].kind not in "biuf":
                        raise UnsafeStateError(f"{where}: cannot store field {name!r} of dtype "
                                               f"{obj.dtype.fields[name][0]} in a safe bundle")
                    fields[name] = self.array(np.ascontiguousarray(obj[name]))
                return {"t": "struct", "descr": [[n, obj.dtype.fields[n][0].str, obj.dtype.fields[n][1]]
                                                 for n in obj.dtype.names],
                        "itemsize": obj.dtype.itemsize, "n": len(obj), "fields": fields}
            if obj.dtype.kind == "O":
                return {"t": "ndobj", "shape": list(obj.shape),
                        "v": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj.ravel().tolist())]}
            raise UnsafeStateError(f"{where}: cannot store a numpy array of dtype {obj.dtype} in a safe bundle")
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple) and type(obj) is tuple:
            return {"t": "tuple", "v": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, (set, frozenset)):
            return {"t": type(obj).__name__, "v": [self.encode(v, f"{where}{{}}") for v in sorted(obj, key=repr)]}
        if type(obj) is dict:
            return self._dict(obj, where)
        if isinstance(obj, np.dtype):
            if obj.kind not in "biufcU":
                raise UnsafeStateError(f"{where}: cannot store numpy dtype {obj} in a safe bundle")
            return {"t": "dtype", "v": obj.str}
        if isinstance(obj, type):
            name = qualified_name(obj)
            if name not in _TRUSTED_TYPE_VALUES:
                raise UnsafeStateError(f"{where}: cannot store the type {name} in a safe bundle")
            return {"t": "type", "v": name}
        if sp.issparse(obj) and type(obj).__name__ in _SPARSE and type(obj).__module__.startswith("scipy.sparse"):
            return {"t": "sparse", "kind": type(obj).__name__, "shape": list(obj.shape),
                    "data": self.array(obj.data), "indices": self.array(obj.indices), "indptr": self.array(obj.indptr)}
        if isinstance(obj, np.random.RandomState):
            kind, keys, pos, has_gauss, gauss = obj.get_state()
            return {"t": "randomstate", "keys": self.array(keys), "pos": int(pos), "has_gauss": int(has_gauss),
                    "gauss": float(gauss)}
        name = qualified_name(type(obj))
        if name in TRUSTED_REDUCE:
            cls, args, state = obj.__reduce__()
            return {"t": "reduce", "cls": name, "args": self.encode(tuple(args), f"{where}.args"),
                    "state": self.encode(state, f"{where}.state")}
        if not is_trusted(name):
            raise UnsafeStateError(f"{where}: cannot store a {name} in a safe bundle (not a trusted type)")
        state = obj.__getstate__() if hasattr(obj, "__getstate__") else obj.__dict__
        state = {} if state is None else state
        if type(state) is not dict:
            raise UnsafeStateError(f"{where}: {name} has a state that is not an attribute dict")
        return {"t": "obj", "cls": name, "state": self._dict(state, f"{where}.{type(obj).__name__}")}

    def _dict(self, obj: dict, where: str) -> Any:
        keys = list(obj)
        if (len(keys) >= _BIG_DICT and all(type(k) is str for k in keys)
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in obj.values())):
            key_array = np.asarray(keys, dtype=str)
            if all(k == s for k, s in zip(keys, key_array.tolist())):  # numpy drops trailing NULs
                return {"t": "strintdict", "k": self.array(key_array),
                        "v": self.array(np.fromiter(obj.values(), dtype=np.int64, count=len(obj)))}
        if all(type(k) is str for k in keys):
            return {"t": "dict", "v": {k: self.encode(v, f"{where}[{k!r}]") for k, v in obj.items()}}
        return {"t": "pairs", "v": [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                                    for k, v in obj.items()]}


class _Reader:
    def __init__(self, arrays: Any, source: str) -> None:
        self.arrays = arrays
        self.source = source

    def fail(self, problem: str) -> UnsafeStateError:
        return UnsafeStateError(f"{self.source}: {problem}")

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays.files:
            raise self.fail(f"refers to a missing array {key!r}")
        return self.arrays[key]

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise self.fail("malformed structure")
        tag = node["t"]
        if tag == "nd":
            return self.array(node["a"])
        if tag == "np":
            return self.array(node["a"])[()]
        if tag == "bigint":
            return int(node["v"])
        if tag == "float":
            return float(node["v"])
        if tag == "tuple":
            return tuple(self.decode(v) for v in node["v"])
        if tag in ("set", "frozenset"):
            items = [self.decode(v) for v in node["v"]]
            return set(items) if tag == "set" else frozenset(items)
        if tag == "dict":
            return {str(k): self.decode(v) for k, v in node["v"].items()}
        if tag == "pairs":
            return {self._key(self.decode(k)): self.decode(v) for k, v in node["v"]}
        if tag == "strintdict":
            keys, values = self.array(node["k"]), self.array(node["v"])
            if keys.dtype.kind != "U" or values.dtype.kind != "i" or len(keys) != len(values):
                raise self.fail("malformed vocabulary arrays")
            return dict(zip(keys.tolist(), values.tolist()))
        if tag == "ndobj":
            values = [self.decode(v) for v in node["v"]]
            out = np.empty(len(values), dtype=object)
            out[:] = values
            return out.reshape(tuple(int(n) for n in node["shape"]))
        if tag == "dtype":
            dtype = np.dtype(str(node["v"]))
            if dtype.kind not in "biufcU":
                raise self.fail(f"untrusted dtype {node['v']!r}")
            return dtype
        if tag == "type":
            if node["v"] not in _TRUSTED_TYPE_VALUES:
                raise self.fail(f"untrusted type {node['v']!r}")
            return _TRUSTED_TYPE_VALUES[node["v"]]
        if tag == "sparse":
            if node["kind"] not in _SPARSE:
                raise self.fail(f"untrusted sparse kind {node['kind']!r}")
            parts = (self.array(node["data"]), self.array(node["indices"]), self.array(node["indptr"]))
            return _SPARSE[node["kind"]](parts, shape=tuple(int(n) for n in node["shape"]))
        if tag == "randomstate":
            state = np.random.RandomState()
            state.set_state(("MT19937", self.array(node["keys"]), int(node["pos"]), int(node["has_gauss"]),
                             float(node["gauss"])))
            return state
        if tag == "struct":
            descr = node["descr"]
            if not all(np.dtype(str(kind)).kind in "biuf" for _, kind, _ in descr):
                raise self.fail("untrusted structured array field type")
            dtype = np.dtype({"names": [str(n) for n, _, _ in descr], "formats": [str(k) for _, k, _ in descr],
                              "offsets": [int(o) for _, _, o in descr], "itemsize": int(node["itemsize"])})
            out = np.zeros(int(node["n"]), dtype=dtype)
            for name, key in node["fields"].items():
                out[name] = self.array(key)
            return out
        if tag == "reduce":
            if node.get("cls") not in TRUSTED_REDUCE:
                raise self.fail(f"names the class {node.get('cls')!r}, which is not a trusted type; "
                                "refusing to load it")
            cls = self._class(node["cls"])
            args, state = self.decode(node["args"]), self.decode(node["state"])
            if not isinstance(args, tuple) or not all(isinstance(a, (int, np.ndarray)) for a in args):
                raise self.fail(f"malformed arguments for {node['cls']}")
            obj = cls(*args)
            obj.__setstate__(state)
            return obj
        if tag == "obj":
            return self._object(node)
        raise self.fail(f"unknown entry type {tag!r}")

    @staticmethod
    def _key(key: Any) -> Any:
        if isinstance(key, (list, dict, set)):
            raise TypeError("unhashable dictionary key")
        return key

    def _class(self, name: str) -> type:
        module_name, _, class_name = name.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name, None)
        if not isinstance(cls, type) or qualified_name(cls) != name:
            raise self.fail(f"class {name!r} is not available in this installation")
        return cls

    def _object(self, node: dict) -> Any:
        name = node.get("cls")
        if not is_trusted(name):
            raise self.fail(f"names the class {name!r}, which is not a trusted type; refusing to load it")
        cls = _REGISTERED.get(name) or self._class(name)
        state = self.decode(node.get("state"))
        if type(state) is not dict:
            raise self.fail(f"the state of {name} is not an attribute dict")
        obj = cls.__new__(cls)
        if hasattr(obj, "__setstate__"):
            obj.__setstate__(state)
        else:
            obj.__dict__.update(state)
        return obj


def save_state(obj: Any, path: str | os.PathLike[str]) -> str:
    """Write ``obj`` to ``path`` in the code-free format; returns the file's SHA-256.

    Raises :class:`UnsafeStateError` naming the first part of ``obj`` the format cannot hold.
    """
    writer = _Writer()
    structure = {"format": STATE_FORMAT, "root": writer.encode(obj, "state")}
    document = json.dumps(structure, allow_nan=False).encode("utf-8")
    members = {**writer.arrays, _STRUCTURE: np.frombuffer(document, dtype=np.uint8)}
    path = Path(path)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **members)
    return file_sha256(path)


def load_state(path: str | os.PathLike[str]) -> Any:
    """Read a file written by :func:`save_state`; never executes code from it.

    Raises :class:`UnsafeStateError` for untrusted or malformed content and
    :class:`~prodcat.errors.ModelError` for an unreadable file.
    """
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if _STRUCTURE not in arrays.files:
                raise UnsafeStateError(f"{source}: not a prodcat state file (no structure)")
            structure = json.loads(arrays[_STRUCTURE].tobytes().decode("utf-8"))
            if not isinstance(structure, dict) or structure.get("format") != STATE_FORMAT:
                raise UnsafeStateError(f"{source}: not a {STATE_FORMAT} state file")
            return _Reader(arrays, source).decode(structure.get("root"))
    except ModelError:
        raise
    except FileNotFoundError:
        raise ModelError(f"{source}: missing file") from None
    except RecursionError:
        raise UnsafeStateError(f"{source}: structure nested too deeply") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        detail = f"{type(error).__name__}: {error or 'no detail'}"
        raise ModelError(f"{source}: unreadable or truncated ({detail})") from None
    except ValueError as error:
        if "allow_pickle" in str(error):  # numpy refuses pickled content when allow_pickle=False
            raise UnsafeStateError(f"{source}: holds pickled data, which prodcat never loads (loading it could "
                                   "run code)") from None
        raise UnsafeStateError(f"{source}: malformed state (ValueError: {error or 'no detail'})") from None
    except (KeyError, TypeError, AttributeError, IndexError, UnicodeDecodeError, ImportError) as error:
        raise UnsafeStateError(f"{source}: malformed state ({type(error).__name__}: {error or 'no detail'})") from None


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], Any]) -> None:
    """``write(temporary path)``, a sibling of ``path``, then rename it over ``path`` (a reader never
    sees half a file; the temporary file is removed when ``write`` fails)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
