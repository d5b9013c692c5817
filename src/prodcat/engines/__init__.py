"""Where the work runs: the local engine (default) or Ray (``pip install 'prodcat[ray]'``).

``with get_engine("ray", address=None) as engine: engine.predict(model_dir, source, out)``.
Every engine gives the same results; only :mod:`prodcat.engines.ray_engine` imports Ray, and
only when the Ray engine is asked for.
"""

from __future__ import annotations

from prodcat.engines.base import DEFAULT_CHUNK_ROWS, Engine, PredictStats
from prodcat.engines.batch import OutputSpec
from prodcat.engines.local import LocalEngine
from prodcat.engines.source import ProductSource
from prodcat.errors import ProdcatError

ENGINES = ("local", "ray")

__all__ = ["DEFAULT_CHUNK_ROWS", "ENGINES", "Engine", "LocalEngine", "OutputSpec", "PredictStats", "ProductSource",
           "check_engine", "get_engine"]


def check_engine(name: str, address: str | None = None) -> None:
    """Refuse, before any work, an unknown engine, an address without Ray, or Ray when it is not installed."""
    if name not in ENGINES:
        raise ProdcatError(f"unknown engine {name!r} (engines: {', '.join(ENGINES)})")
    if name == "local" and address is not None:
        raise ProdcatError("--address needs --engine ray")
    if name == "ray":
        from prodcat.engines.ray_engine import import_ray

        import_ray()


def get_engine(name: str = "local", *, address: str | None = None, workers: int | None = None,
               model: object = None) -> Engine:
    """The engine called ``name``; ``address`` (Ray only) joins a running cluster instead of starting one.

    ``workers``: Ray actors (default: the CPUs Ray sees; a local runtime gets 2 CPUs unless given).
    ``model``: a bundle the local engine may reuse instead of loading it again.
    """
    check_engine(name, address)
    if name == "local":
        return LocalEngine(model=model)
    from prodcat.engines.ray_engine import RayEngine

    return RayEngine(address=address, workers=workers)
