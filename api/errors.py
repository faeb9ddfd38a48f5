"""One error shape everywhere: `{"error": {"message", "type", "param", "code"}}`.

FastAPI's own errors (422 `{"detail"}`, 404/405 from the router, unhandled
exceptions) are all translated here, with OpenAI's wording where it has one.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers


def error_body(
    message: str, type: str = "invalid_request_error", param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, f"No {kind} found with id '{object_id}'.")


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


# Values of `type` that tag our discriminated unions (tools, content parts,
# response formats). Pydantic inserts the tag into an error's location.
_UNION_TAGS = frozenset({"function", "file_search", "code_interpreter", "text", "image_url",
                         "image_file", "json_object", "json_schema"})


def _param_path(loc: tuple[Any, ...]) -> str | None:
    """("body", "tools", 0, "function", "function", "name") -> "tools[0].function.name"."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    # Union member labels such as "literal['auto']" or "tagged-union[...]" are noise.
    parts = [p for p in parts if not (isinstance(p, str) and "[" in p)]
    kept: list[Any] = []
    for index, part in enumerate(parts):
        follows_index = index > 0 and isinstance(parts[index - 1], int)
        repeated = index + 1 < len(parts) and parts[index + 1] == part
        if part in _UNION_TAGS and (follows_index or repeated):
            continue
        kept.append(part)
    path = ""
    for part in kept:
        path += f"[{part}]" if isinstance(part, int) else ("." if path else "") + str(part)
    return path or None


_TYPE_NAMES = {
    "string_type": "a string", "int_type": "an integer", "float_type": "a number",
    "bool_type": "a boolean", "dict_type": "an object", "list_type": "an array",
    "model_type": "an object", "model_attributes_type": "an object",
    "int_parsing": "an integer", "float_parsing": "a number", "bool_parsing": "a boolean",
}


def _json_type_name(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a decimal", str: "a string",
             list: "an array", dict: "an object", type(None): "null"}
    return names.get(type(value), "an unknown type")


def _validation_error(error: dict[str, Any]) -> ApiError:
    kind = error.get("type", "")
    param = _param_path(tuple(error.get("loc", ())))
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "json_invalid":
        return invalid(
            "We could not parse the JSON body of your request. The OpenAI API expects a "
            "JSON payload, but what was sent was not valid JSON.",
            code="invalid_json",
        )
    if kind == "missing":
        return invalid(f"Missing required parameter: '{param}'.", param,
                       "missing_required_parameter")
    if kind == "extra_forbidden":
        return invalid(f"Unknown parameter: '{param}'.", param, "unknown_parameter")
    if kind in _TYPE_NAMES:
        return invalid(
            f"Invalid type for '{param}': expected {_TYPE_NAMES[kind]}, but got "
            f"{_json_type_name(value)} instead.", param, "invalid_type")
    if kind == "string_too_long":
        return invalid(
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{ctx.get('max_length')}, but got a string with length {len(str(value))} instead.",
            param, "string_above_max_length")
    if kind == "invalid_url":  # raised by our validators (api/schemas/messages.py)
        return invalid(f"Invalid '{param}'. Expected a valid URL, but got a value with an "
                       "invalid format.", param, "invalid_value")
    if kind == "too_long":
        return invalid(
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{ctx.get('max_length')}, but got an array with length {ctx.get('actual_length')} "
            "instead.", param, "array_above_max_length")
    if kind == "too_short" and ctx.get("actual_length") == 0:
        return invalid(
            f"Invalid '{param}': empty array. Expected an array with minimum length "
            f"{ctx.get('min_length')}, but got an empty array instead.", param, "empty_array")
    if kind in ("greater_than_equal", "greater_than"):
        return invalid(
            f"Invalid '{param}': value below minimum. Expected a value >= "
            f"{ctx.get('ge', ctx.get('gt'))}, but got {value} instead.", param,
            "value_below_min_value")
    if kind in ("less_than_equal", "less_than"):
        return invalid(
            f"Invalid '{param}': value above maximum. Expected a value <= "
            f"{ctx.get('le', ctx.get('lt'))}, but got {value} instead.", param,
            "value_above_max_value")
    if kind in ("literal_error", "enum", "union_tag_invalid"):
        expected = ctx.get("expected") or ctx.get("expected_tags") or ""
        return invalid(
            f"Invalid value: '{value if kind != 'union_tag_invalid' else ctx.get('tag')}'. "
            f"Supported values are: {expected}.", param, "invalid_value")
    if kind.startswith("oai_"):
        # Our own validators raise PydanticCustomError("oai_<code>", message).
        return invalid(str(error.get("msg")), param, kind.removeprefix("oai_"))
    message = str(error.get("msg", "Invalid value")).removeprefix("Value error, ")
    return invalid(f"Invalid '{param}': {message}", param, "invalid_value")


def _response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.message, error.type, error.param, error.code),
        status_code=error.status_code,
        headers=error.headers,
    )


def _driver_error(exc: Exception) -> BaseException | None:
    """psycopg's exception: SQLAlchemy's wraps it (`orig`), the raw connections raise it."""
    return exc.orig if isinstance(exc, DBAPIError) else exc


def database_down(exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %s", type(_driver_error(exc)).__name__)
    return _response(ApiError(503, "The server is temporarily unavailable; retry shortly.",
                              type="server_error", code="service_unavailable"))


def unstorable_value(exc: Exception) -> JSONResponse:
    # SQLSTATE class 22 ("data exception"): a value from the request that Postgres
    # cannot take, most often a NUL character (text and jsonb refuse \u0000), which
    # passes every schema check. A client error, not a 500.
    orig = _driver_error(exc)
    detail = str(orig).splitlines()[0] if orig is not None else ""
    logger.info("request value refused by the database: %s", detail)
    if "NUL" in detail or "Unicode escape" in detail:  # text / jsonb
        message = "Invalid value: strings must not contain NUL (\\u0000) characters."
    else:
        message = f"Invalid value: {detail or 'the database refused a value'}."
    return _response(invalid(message, code="invalid_value"))


def handled_response(exc: Exception) -> JSONResponse | None:
    """The response the app's handlers give `exc`, or None for an unexpected error: for
    code that runs outside FastAPI's exception middleware (api/fast_lane.py)."""
    if isinstance(exc, ApiError):
        return _response(exc)
    if isinstance(exc, OperationalError | psycopg.OperationalError):
        return database_down(exc)
    if isinstance(exc, DataError | psycopg.DataError):
        return unstorable_value(exc)
    return None


_STATUS_MESSAGES = {
    404: ("Invalid URL ({method} {path}).", "invalid_request_error"),
    405: ("Method {method} is not allowed for {path}.", "invalid_request_error"),
    413: ("Request body too large.", "invalid_request_error"),
    415: ("Unsupported content type: expected application/json.", "invalid_request_error"),
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return _response(_validation_error(errors[0]) if errors else invalid("Invalid request."))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        template, kind = _STATUS_MESSAGES.get(
            exc.status_code, (str(exc.detail), "invalid_request_error"))
        message = template.format(method=request.method, path=request.url.path)
        return _response(ApiError(exc.status_code, message, type=kind,
                                  headers=getattr(exc, "headers", None)))

    @app.exception_handler(OperationalError)
    @app.exception_handler(psycopg.OperationalError)  # the raw connections (core/rawdb.py)
    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        return database_down(exc)

    @app.exception_handler(DataError)
    @app.exception_handler(psycopg.DataError)
    async def _unstorable_value(_: Request, exc: Exception) -> JSONResponse:
        return unstorable_value(exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return database_down(OperationalError("", {}, exc))
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(ApiError(500, "The server had an error while processing your request.",
                                  type="server_error"))
