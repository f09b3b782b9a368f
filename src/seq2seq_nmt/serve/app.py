"""The REST API and the web page (FastAPI): ``POST /translate``, ``GET /models``, ``GET /health``,
``/docs`` (OpenAPI) and ``/`` (static/index.html). Every refused request gets a 4xx status with
``{"error": "<one line>"}``; decoding options are checked by ``DecodingOptions`` alone."""

import asyncio
import json
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, ValidationError
from starlette.exceptions import HTTPException

from seq2seq_nmt.checkpoint import first_line
from seq2seq_nmt.decoding.options import DecodingOptions
from seq2seq_nmt.serve.batcher import Batcher
from seq2seq_nmt.serve.models import Model
from seq2seq_nmt.translate.translator import Translation, Translator

STATIC = files("seq2seq_nmt.serve") / "static"
OPTION_NAMES = [f.name for f in fields(DecodingOptions)]


@dataclass(frozen=True)
class Limits:
    """What one request may ask (``conf/serve.yaml``'s ``limits``)."""

    max_chars: int = 1000
    max_texts: int = 64
    max_body_bytes: int = 1_000_000
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"limits.{name} must be a positive number, got {value!r}")


class TranslateRequest(BaseModel):
    """``text`` or ``texts``, the ``model`` (default: the first), ``attention`` (pieces and
    weights of the best output) and any decoding option (``DecodingOptions``) at the top level."""

    model_config = ConfigDict(extra="allow")
    text: StrictStr | None = None
    texts: list[StrictStr] | None = None
    model: StrictStr | None = None
    attention: StrictBool = False


class RequestError(Exception):
    """A refused request: its status and one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def one_line(e: ValidationError) -> str:
    """The first problem of a pydantic validation error, on one line."""
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"{where}: {err['msg']}"


async def read_body(request: Request, limit: int) -> dict:
    """The JSON object of the body, read up to ``limit`` bytes (RequestError otherwise)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, f"body over the limit of {limit} bytes")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(400, "the body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON: {e}") from None
    except RecursionError:
        raise RequestError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError(422, f"the body must be a JSON object, not {type(data).__name__}")
    return data


def parse(data: dict, models: dict[str, Model], limits: Limits):
    """The request's model, texts, decoding options and attention flag (RequestError if bad)."""
    try:
        req = TranslateRequest.model_validate(data)
    except ValidationError as e:
        raise RequestError(422, one_line(e)) from None
    if (req.text is None) == (req.texts is None):
        raise RequestError(422, "give either text (a string) or texts (a list of strings)")
    texts = [req.text] if req.text is not None else req.texts
    if not texts:
        raise RequestError(422, "texts is empty")
    if len(texts) > limits.max_texts:
        raise RequestError(422, f"{len(texts)} texts; the limit is {limits.max_texts} a request")
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            raise RequestError(
                422, f"text {i} has {len(t)} characters; the limit is {limits.max_chars}"
            )
    name = req.model or next(iter(models))
    if name not in models:
        raise RequestError(404, f"unknown model {name!r}: one of {', '.join(models)}")
    try:
        options = DecodingOptions.from_mapping(req.model_extra or {})
    except (ValueError, TypeError) as e:
        raise RequestError(422, first_line(e, 300).removeprefix("ValueError: ")) from None
    return models[name], texts, options, req.attention


def batch_key(model: str, options: DecodingOptions) -> tuple:
    """Sentences of equal keys share batches: the model and the options; a seeded request
    (reproducible per batch, as ``nmt-translate`` decodes it) gets batches of its own."""
    return (model, options) if options.seed is None else (model, options, object())


def to_json(translator: Translator, tr: Translation, attention: bool) -> dict:
    """One translation: best text, hypotheses with scores, and if asked the best one's
    target pieces, source pieces and attention (a row per target piece, a column per source)."""
    out = {
        "text": translator.text(tr),
        "hypotheses": [
            {"text": translator.text(tr, k), "score": h.norm_score, "log_prob": h.score}
            for k, h in enumerate(tr.hypotheses)
        ],
    }
    if attention:
        pieces, attn = translator.output(tr, 0, eos=True)
        out |= {
            "source_pieces": [*tr.source, "<eos>"],
            "target_pieces": pieces,
            "attention": [[round(w, 4) for w in row] for row in attn.tolist()],
        }
    return out


def create_app(
    models: dict[str, Model],
    limits: Limits = Limits(),
    max_batch_size: int = 64,
    max_wait_ms: float = 5.0,
    cors_origins: tuple[str, ...] = (),
) -> FastAPI:
    """The ASGI app serving ``models`` (by name; the first is the default)."""

    def decode(key, texts: list[str]) -> list[Translation]:
        name, options = key[:2]
        return models[name].translator.search(texts, options, batch_size=len(texts))

    batcher = Batcher(decode, max_batch_size, max_wait_ms)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(batcher.run())
        yield
        task.cancel()

    app = FastAPI(
        title="seq2seq-nmt", summary="Translate with trained seq2seq-nmt checkpoints",
        lifespan=lifespan,
    )  # fmt: skip
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"])

    @app.exception_handler(RequestError)
    async def refused(request: Request, e: RequestError) -> JSONResponse:
        return error(e.status, str(e))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        return error(e.status_code, str(e.detail))

    @app.exception_handler(Exception)
    async def failed(request: Request, e: Exception) -> JSONResponse:
        return error(500, first_line(e, 300))

    @app.post(
        "/translate",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": TranslateRequest.model_json_schema()}},
            }
        },
        description="Decoding options at the top level of the body: " + ", ".join(OPTION_NAMES),
    )
    async def translate(request: Request) -> JSONResponse:
        data = await read_body(request, limits.max_body_bytes)
        model, texts, options, attention = parse(data, models, limits)
        try:
            results = await asyncio.wait_for(
                batcher.submit(batch_key(model.name, options), texts), limits.timeout_s
            )
        except asyncio.TimeoutError:
            raise RequestError(503, f"not translated within {limits.timeout_s} s") from None
        tr = model.translator
        out = [to_json(tr, r, attention) for r in results]
        return JSONResponse({"model": model.name, "translations": out})

    @app.get("/models")
    async def list_models() -> dict:
        return {"default": next(iter(models)), "models": [m.info for m in models.values()]}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "batches": batcher.batches, "sentences": batcher.sentences}

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
