"""REST API over a model bundle (FastAPI): predict one product or a batch, describe the model.

``create_app(model)`` builds the application; ``run_server(model_dir)`` serves it with uvicorn,
each worker loading the bundle once at start-up. Endpoints: ``POST /v1/predict`` (JSON, or
multipart with an image file), ``POST /v1/predict/batch``, ``GET /v1/categories``,
``GET /v1/model``, ``GET /health``, ``GET /ready``, ``GET /metrics`` (Prometheus); the schema is at
``/openapi.json`` and its pages at ``/docs`` (Swagger UI) and ``/redoc``, served from local files
(the ``fastapi-offline`` package ships them), so they work without network.

Bad input always gets a 4xx whose ``detail`` says what is wrong; model calls run in the
thread pool so the event loop keeps answering while a batch is classified.
"""

# No `from __future__ import annotations`: FastAPI must see the per-app batch model in signatures.

import json
import os
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

import prodcat
from prodcat.errors import DataError, ProdcatError
from prodcat.serve.limits import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DECODES,
    BodySizeLimit,
    DecodeGate,
    server_options,
)
from prodcat.serve.metrics import MetricsMiddleware, ServeMetrics
from prodcat.serve.schemas import (
    DEFAULT_TOP_K,
    EXAMPLE_PRODUCT,
    MAX_DESCRIPTION_CHARS,
    BatchOut,
    CategoriesOut,
    ErrorOut,
    HealthOut,
    ModelOut,
    PredictionOut,
    ProductIn,
    ReadyOut,
    batch_model,
)
from prodcat.serve.service import MAX_TOP_K, PredictionService, ProductInput
from prodcat.serve.uploads import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_UPLOAD_PIXELS, decode_base64_image

APP_FACTORY = "prodcat.serve.api:app_from_environment"
ENV_MODEL = "PRODCAT_SERVE_MODEL"
ENV_LIMITS = "PRODCAT_SERVE_LIMITS"
FORM_TEXT_FIELDS = ("designation", "description")
FORM_IMAGE_FIELD = "image"
FORM_MEDIA_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC_URL = "/static/docs"

TopK = Annotated[int, Query(ge=1, le=MAX_TOP_K, description="How many classes to return, best first.")]


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """What is wrong with the request: a message, or one entry per invalid field."""

    detail: list[ValidationErrorItem] | str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request (e.g. broken multipart body)."},
    413: {"model": ErrorOut, "description": "Request body or image over the server's limits."},
    415: {"model": ErrorOut, "description": "Unsupported content type, or the image is not an image."},
    422: {"model": ValidationErrorOut, "description": "Invalid product: wrong types, unknown fields, no text "
          "and no image, corrupt image, batch over the limit."},
    503: {"model": ErrorOut, "description": "The model is still loading."},
}

PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/ProductIn"},
                "examples": {
                    "text": {"summary": "Title and description", "value": EXAMPLE_PRODUCT},
                    "title": {"summary": "Title only", "value": {"designation": "Manette sans fil pour PS4"}},
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "designation": {"type": "string", "description": "Product title."},
                        "description": {"type": "string", "description": "Longer description."},
                        FORM_IMAGE_FIELD: {"type": "string", "format": "binary", "description": "Product photo."},
                    },
                    "additionalProperties": False,
                },
                "encoding": {FORM_IMAGE_FIELD: {"contentType": "image/jpeg, image/png, image/webp, image/*"}},
            },
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {"designation": {"type": "string"}, "description": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
        },
    }
}


def _validation_errors(errors: list[dict[str, Any]], prefix: tuple = ("body",)) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (it may be a 10 MB image), locations prefixed."""
    return [{"loc": [*prefix, *error.get("loc", ())], "msg": error.get("msg", "invalid"),
             "type": error.get("type", "value_error")} for error in errors]


class _State:
    """The service once loaded, and the limits this app was built with."""

    def __init__(self, service: PredictionService | None, *, max_batch: int, max_image_bytes: int,
                 max_body_bytes: int, max_pixels: int, max_decodes: int, body_timeout_s: float) -> None:
        self.service = service
        self.gate = DecodeGate(max_decodes)
        self.limits = {"max_batch": max_batch, "max_image_bytes": max_image_bytes,
                       "max_body_bytes": max_body_bytes, "max_top_k": MAX_TOP_K, "max_image_pixels": max_pixels,
                       "max_concurrent_decodes": max_decodes, "body_timeout_s": body_timeout_s}

    def predict(self, products: list[ProductInput], top_k: int) -> list[dict[str, Any]]:
        """Classify; requests with photos take a decoding slot (503 when none frees up in time)."""
        service = self.require()
        if not any(p.image is not None for p in products):
            return service.predict(products, top_k)
        with self.gate.slot():
            return service.predict(products, top_k)

    def require(self) -> PredictionService:
        if self.service is None:
            raise HTTPException(503, "the model is still loading; retry when GET /ready answers 200")
        return self.service


def create_app(model: "ProductClassifier | str | Path", *, max_batch: int = 256,  # noqa: F821
               max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS, max_decodes: int = DEFAULT_MAX_DECODES,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> FastAPI:
    """The REST API serving ``model`` (a fitted ProductClassifier, or a bundle directory).

    A bundle directory is checked now (a clear :class:`~prodcat.errors.ModelError` if it is not
    one) and loaded at application start-up; ``/ready`` answers 200 once it is loaded and warmed up.
    """
    for name, value in (("max_batch", max_batch), ("max_image_bytes", max_image_bytes),
                        ("max_body_bytes", max_body_bytes), ("max_pixels", max_pixels), ("max_decodes", max_decodes)):
        if not isinstance(value, int) or value < 1:
            raise ProdcatError(f"{name} must be a positive integer, got {value!r}")
    model_dir: Path | None = None
    service: PredictionService | None = None
    if isinstance(model, (str, os.PathLike)):
        from prodcat.predictor import ProductClassifier

        model_dir = Path(model)
        ProductClassifier.read_manifest(model_dir)  # fail fast on a path that is not a bundle
    else:
        service = PredictionService(model, max_image_bytes=max_image_bytes, max_pixels=max_pixels)
    state = _State(service, max_batch=max_batch, max_image_bytes=max_image_bytes, max_body_bytes=max_body_bytes,
                   max_pixels=max_pixels, max_decodes=max_decodes, body_timeout_s=body_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state.service is None:
            loaded = await run_in_threadpool(PredictionService.from_path, model_dir, max_image_bytes=max_image_bytes,
                                             max_pixels=max_pixels)
            await run_in_threadpool(loaded.warm_up)
            state.service = loaded
        else:
            await run_in_threadpool(state.service.warm_up)
        yield

    app = FastAPI(
        title="prodcat",
        version=prodcat.__version__,
        description="Classify e-commerce products into the 27 Rakuten France product types from their "
        "title, description and photo.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.prodcat = state
    metrics = ServeMetrics()
    app.state.metrics = metrics
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, timeout_s=body_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _add_docs_pages(app)
    _add_error_handlers(app)
    BatchIn = batch_model(max_batch)

    def from_json(item: ProductIn, name: str, image_field: str) -> ProductInput:
        image = None
        if item.image_base64:
            image = decode_base64_image(item.image_base64, max_bytes=max_image_bytes, field=image_field)
        return ProductInput(item.designation, item.description, image, name=name, image_field=image_field)

    def classify_json(items: list[ProductIn], top_k: int, batch: bool) -> list[dict[str, Any]]:
        state.require()
        names = [f"products[{i}]" if batch else "product" for i in range(len(items))]
        products = [from_json(item, name, f"{name}.image_base64" if batch else "image_base64")
                    for item, name in zip(items, names, strict=True)]
        answers = state.predict(products, top_k)
        metrics.observe_answers(answers)
        return answers

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    @app.get("/health", response_model=HealthOut, tags=["status"], summary="Liveness: the process answers")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", response_model=ReadyOut, tags=["status"], summary="Readiness: the model is loaded",
             responses={503: {"model": ReadyOut, "description": "The model is still loading."}})
    def ready() -> Any:
        if state.service is None:
            return JSONResponse({"status": "loading", "fingerprint": None}, status_code=503)
        return {"status": "ready", "fingerprint": state.service.fingerprint}

    @app.get("/metrics", tags=["status"], summary="Prometheus metrics: requests, latency, predictions by "
             "class, share needing review", response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Metrics in the Prometheus text exposition format."}})
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.get("/v1/categories", response_model=CategoriesOut, tags=["model"],
             summary="The product type codes with their French names", responses={503: ERROR_RESPONSES[503]})
    def categories() -> dict[str, Any]:
        return {"categories": state.require().categories()}

    @app.get("/v1/model", response_model=ModelOut, tags=["model"],
             summary="The served model: versions, training fingerprint, metrics, limits",
             responses={503: ERROR_RESPONSES[503]})
    def model_info() -> dict[str, Any]:
        return {**state.require().model_info(), "limits": state.limits}

    @app.post("/v1/predict", response_model=PredictionOut, tags=["predict"], openapi_extra=PREDICT_BODY,
              summary="Classify one product (JSON, or multipart with an image file)", responses=ERROR_RESPONSES)
    async def predict(request: Request, top_k: TopK = DEFAULT_TOP_K) -> dict[str, Any]:
        _reject_unknown_query(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if _is_json(media_type):
            body = await request.body()
            answers = await run_in_threadpool(lambda: classify_json([parse_json(ProductIn, body)], top_k, False))
            return answers[0]
        if media_type in FORM_MEDIA_TYPES:
            product = await _form_product(request, max_image_bytes)
            state.require()
            answers = await run_in_threadpool(state.predict, [product], top_k)
            metrics.observe_answers(answers)
            return answers[0]
        raise HTTPException(415, f"send the product as application/json or multipart/form-data (or a "
                                 f"url-encoded form without photo), "
                                 f"not {media_type or 'a body without Content-Type'}")

    @app.post("/v1/predict/batch", response_model=BatchOut, tags=["predict"], responses=ERROR_RESPONSES,
              openapi_extra=_json_body("BatchIn"), summary=f"Classify up to {max_batch} products in one call")
    async def predict_batch(request: Request, top_k: TopK = DEFAULT_TOP_K) -> dict[str, Any]:
        _reject_unknown_query(request)
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not _is_json(media_type):
            raise HTTPException(415, f"send the batch as application/json, not {media_type or 'no Content-Type'}")
        body = await request.body()
        # parsing and validating a large batch happens in the thread pool too, off the event loop
        return await run_in_threadpool(lambda: {"predictions": classify_json(parse_json(BatchIn, body).products,
                                                                             top_k, True)})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for body_model in (ProductIn, BatchIn):  # request bodies read by hand, documented here
                definition = body_model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(definition.pop("$defs", {}))
                schemas.setdefault(body_model.__name__, definition)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _add_docs_pages(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` and ReDoc at ``/redoc``, their scripts and styles served from this server."""
    app.mount(DOCS_STATIC_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    oauth2_redirect = app.swagger_ui_oauth2_redirect_url

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API documentation",
                                   oauth2_redirect_url=oauth2_redirect,
                                   swagger_js_url=f"{root}{DOCS_STATIC_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_STATIC_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png")

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API reference",
                              redoc_js_url=f"{root}{DOCS_STATIC_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{DOCS_STATIC_URL}/favicon.png", with_google_fonts=False)


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _json_body(schema: str) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{schema}"}}}}}


def parse_json(model: type[BaseModel], body: bytes) -> Any:
    """``body`` validated as ``model``; a 422 naming each problem (never echoing the input) if not."""
    if not body.strip():
        raise RequestValidationError([{"loc": ("body",), "msg": "request body is empty: send a JSON object such "
                                       "as {\"designation\": \"...\"}", "type": "missing"}])
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise RequestValidationError(_validation_errors(error.errors(include_input=False))) from None


def _reject_unknown_query(request: Request, allowed: tuple[str, ...] = ("top_k",)) -> None:
    """Unknown query parameters are refused like unknown body fields (a misspelt ``topk`` is a 422)."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise RequestValidationError([{"loc": ("query", name), "msg": f"unknown query parameter; this endpoint "
                                       f"accepts {', '.join(allowed)}", "type": "extra_forbidden"} for name in unknown])


async def _form_product(request: Request, max_image_bytes: int) -> ProductInput:
    """The product of a multipart form: text fields and at most one image file, nothing else."""
    async with request.form(max_files=1, max_fields=len(FORM_TEXT_FIELDS) + 1,
                            max_part_size=4 * MAX_DESCRIPTION_CHARS + 1024) as form:
        errors: list[dict[str, Any]] = []
        values: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key not in (*FORM_TEXT_FIELDS, FORM_IMAGE_FIELD):
                errors.append({"loc": ("body", key), "msg": "Extra inputs are not permitted: the form accepts "
                               "designation, description and image", "type": "extra_forbidden"})
            elif key in values:
                errors.append({"loc": ("body", key), "msg": "given more than once", "type": "duplicate"})
            elif key in FORM_TEXT_FIELDS and not isinstance(value, str):
                errors.append({"loc": ("body", key), "msg": "must be a text field, not a file", "type": "string_type"})
            elif key == FORM_IMAGE_FIELD and isinstance(value, str) and value:
                errors.append({"loc": ("body", key), "msg": "must be a file upload, not a text field "
                               "(use image_base64 in a JSON body to send base64 text)", "type": "file_type"})
            else:
                values[key] = value
        image = values.get(FORM_IMAGE_FIELD)
        data = None
        if isinstance(image, UploadFile):
            data = await image.read(max_image_bytes + 1)
            if not data and not image.filename:  # a browser form sends an empty part when no file is chosen
                data = None
        if errors:
            raise RequestValidationError(errors)
        try:
            item = ProductIn.model_validate({k: values.get(k) for k in FORM_TEXT_FIELDS},
                                            context={"has_upload": data is not None})
        except ValidationError as error:
            raise RequestValidationError(_validation_errors(error.errors(include_input=False))) from None
    return ProductInput(item.designation, item.description, data, name="product", image_field=FORM_IMAGE_FIELD)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        details = _validation_errors(list(error.errors()), prefix=())
        return JSONResponse({"detail": jsonable_encoder(details)}, status_code=422)

    @app.exception_handler(DataError)
    async def bad_data(request: Request, error: DataError) -> JSONResponse:
        status = getattr(error, "status", 422)
        return JSONResponse({"detail": str(error)}, status_code=status if 400 <= status < 600 else 422)


def app_from_environment() -> FastAPI:
    """Application factory for uvicorn workers: the bundle and limits come from the environment."""
    model_dir = os.environ.get(ENV_MODEL)
    if not model_dir:
        raise ProdcatError(f"{ENV_MODEL} is not set: start the server with run_server(model_dir)")
    limits = json.loads(os.environ.get(ENV_LIMITS) or "{}")
    return create_app(model_dir, **limits)


def run_server(model_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
               max_batch: int = 256, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS,
               max_decodes: int = DEFAULT_MAX_DECODES, body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
               log_level: str = "info", access_log: bool = True) -> None:
    """Serve the bundle in ``model_dir`` with uvicorn; each of ``workers`` processes loads it once.

    The bundle is checked before uvicorn starts, so a wrong path fails with a clear message.
    """
    import uvicorn

    from prodcat.predictor import ProductClassifier

    if not isinstance(workers, int) or workers < 1:
        raise ProdcatError(f"workers must be a positive integer, got {workers!r}")
    if not 0 <= int(port) <= 65535:
        raise ProdcatError(f"port must be between 0 and 65535, got {port}")
    ProductClassifier.read_manifest(model_dir)
    os.environ[ENV_MODEL] = str(Path(model_dir).resolve())
    os.environ[ENV_LIMITS] = json.dumps({"max_batch": max_batch, "max_image_bytes": max_image_bytes,
                                         "max_body_bytes": max_body_bytes, "max_pixels": max_pixels,
                                         "max_decodes": max_decodes, "body_timeout_s": body_timeout_s})
    if workers == 1:
        uvicorn.run(APP_FACTORY, factory=True, host=host, port=int(port), log_level=log_level, access_log=access_log,
                    **server_options())
        return
    config = uvicorn.Config(APP_FACTORY, factory=True, host=host, port=int(port), workers=workers,
                            log_level=log_level, access_log=access_log, **server_options())
    _run_workers(config)


def tcp_listener(sock: socket.socket) -> socket.socket:
    """The same listening socket, labelled as TCP so that accepted connections get ``TCP_NODELAY``.

    uvicorn binds the shared socket of its worker processes with protocol 0; asyncio then leaves
    Nagle's algorithm on for every connection and each keep-alive answer waits ~40 ms for the
    client's delayed ACK (uvicorn issue #3149). Re-wrapping the descriptor fixes that.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto == socket.IPPROTO_TCP:
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


def _run_workers(config: "uvicorn.Config") -> None:  # noqa: F821
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[tcp_listener(config.bind_socket())]).run()
