"""The `http` agent: one HTTP request per attempt, to a destination the
server's allow-list admits (podium.egress.destinations).

Config (static; `method`, `url` and `body` are `{{ CEL }}` templates over the
step's evaluated `input`):

    method: POST                     # default GET
    url: "https://api.example.com/orders/{{ input.order_id }}"
    body: "{{ input.order }}"        # a non-string value renders as JSON
    headers:
      Content-Type: application/json
      Authorization: {secret: api_token, prefix: "Bearer "}
    timeout_s: 10                    # default 30
    expected_statuses: [200, 201]    # default: any 2xx
    response: json                   # json | text | auto (default: by content type)

The output is {"status": ..., "body": ...}. A status outside
`expected_statuses` fails the attempt: 408, 425, 429 and 5xx with type
`http.Retryable` (retryable under the step's retry policy), any other with
`http.Status` (not retried). Timeouts (`podium.Timeout`-like `http.Timeout`)
and connection failures (`http.Connection`) are retryable; a refused
destination (`http.DestinationRefused`) never is. Secret header values are
resolved here, used in the request only, and redacted from anything the step
returns or raises (a server that echoes them back does not leak them into
events)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from podium.core.expressions import ExpressionError
from podium.core.templates import Template, compile_template
from podium.egress.client import EgressClient, ResponseTooLarge
from podium.egress.destinations import DestinationRefused
from podium.egress.secrets import NAME as SECRET_NAME
from podium.egress.secrets import Secrets
from podium.plugins.api import AgentError, Catalog, ConfigProblem, StepContext
from podium.plugins.builtin.settings import as_int, is_number, raise_if_invalid, unknown_settings

_SETTINGS = ("method", "url", "body", "headers", "timeout_s", "expected_statuses", "response")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_RESPONSES = ("json", "text", "auto")
RETRYABLE_STATUSES = frozenset({408, 425, 429})
_TEMPLATE_SCOPE = ("input",)

RETRYABLE = "http.Retryable"
STATUS = "http.Status"
TIMEOUT = "http.Timeout"
CONNECTION = "http.Connection"
REFUSED = "http.DestinationRefused"
BAD_RESPONSE = "http.BadResponse"


class HttpAgent:
    name = "http"
    description = (
        "One HTTP request (method, url and body templates over the input; headers from "
        "server secrets) to an allowed destination; output {status, body}."
    )
    version = "1"

    def __init__(self, client: EgressClient) -> None:
        self._client = client

    def bind(self, client: EgressClient) -> None:
        """Uses another server's client (a plugin report reused by a new server)."""
        self._client = client

    def check_config(self, config: Mapping[str, Any], catalog: Catalog) -> list[ConfigProblem]:
        return list(_problems(config, self._client))

    async def run(self, ctx: StepContext) -> Any:
        config = ctx.config
        raise_if_invalid(_problems(config, self._client))
        secrets = self._client.secrets
        scope = {"input": ctx.input}
        method = _render(config.get("method", "GET"), scope, "method").upper()
        if method not in _METHODS:
            raise AgentError(f"method {method!r} is not one of {', '.join(_METHODS)}",
                             code="podium.InvalidConfig", retryable=False)  # fmt: skip
        url = _render(config["url"], scope, "url")
        body = None
        if "body" in config:
            body = _render(config["body"], scope, "body").encode()
        headers = {str(k): _header(v, secrets) for k, v in (config.get("headers") or {}).items()}
        timeout = float(config.get("timeout_s", 30.0))
        import httpx2  # loads with the first outbound request (egress/client.py)

        try:
            status, content_type, raw = await self._client.request(
                method, url, headers=headers, content=body, timeout=timeout
            )
        except DestinationRefused as error:
            raise AgentError(str(error), code=REFUSED, retryable=False) from None
        except httpx2.TimeoutException:
            raise AgentError(
                f"{method} {_shown(url)}: no answer within {timeout:g}s", code=TIMEOUT
            ) from None
        except ResponseTooLarge as error:
            raise AgentError(str(error), code=BAD_RESPONSE, retryable=False) from None
        except httpx2.HTTPError as error:
            message = secrets.redact(f"{method} {_shown(url)}: {type(error).__name__}: {error}")
            raise AgentError(message, code=CONNECTION) from None
        text = secrets.redact(raw.decode("utf-8", errors="replace"))
        expected = config.get("expected_statuses")
        ok = status in {int(s) for s in expected} if expected else 200 <= status < 300
        if not ok:
            retryable = status in RETRYABLE_STATUSES or status >= 500
            raise AgentError(
                f"{method} {_shown(url)} answered HTTP {status}: {text[:200]}",
                code=RETRYABLE if retryable else STATUS,
                retryable=retryable,
            )
        return {"status": status, "body": _body(text, content_type, config.get("response", "auto"))}


def _render(source: Any, scope: Mapping[str, Any], field: str) -> str:
    try:
        template: Template = compile_template(str(source), _TEMPLATE_SCOPE)
        return template.render(scope)
    except ExpressionError as error:
        raise AgentError(f"{field}: {error}", code="podium.InvalidInput", retryable=False) from None


def _header(value: Any, secrets: Secrets) -> str:
    if isinstance(value, str):
        return value
    name = value["secret"]
    secret = secrets.get(name)
    if secret is None:
        raise AgentError(f"secret {name!r} is not configured on the server",
                         code="podium.InvalidConfig", retryable=False)  # fmt: skip
    return str(value.get("prefix", "")) + secret


def _shown(url: str) -> str:
    """The URL without its query (which may carry tokens), for messages."""
    return url.split("?", 1)[0]


def _body(text: str, content_type: str, mode: str) -> Any:
    if mode == "text" or (mode == "auto" and "json" not in content_type.lower()):
        return text
    try:
        return json.loads(text) if text else None
    except ValueError:
        if mode == "json":
            raise AgentError(
                "the response is not JSON", code=BAD_RESPONSE, retryable=False
            ) from None
        return text


def _problems(config: Mapping[str, Any], client: EgressClient) -> Iterator[ConfigProblem]:
    yield from unknown_settings(config, _SETTINGS)
    if not isinstance(config.get("url"), str) or not config.get("url"):
        yield ("url", "required: the URL template")
    for field in ("method", "url", "body"):
        if field in config:
            try:
                compile_template(str(config[field]), _TEMPLATE_SCOPE)
            except ExpressionError as error:
                yield (field, f"invalid template: {error}")
    headers = config.get("headers")
    if headers is not None and not isinstance(headers, Mapping):
        yield ("headers", "must map header names to strings or {secret, prefix}")
    for key, value in (headers or {}).items() if isinstance(headers, Mapping) else ():
        if isinstance(value, str):
            continue
        if not isinstance(value, Mapping) or set(value) - {"secret", "prefix"}:
            yield (f"headers.{key}", "must be a string or {secret: NAME, prefix: TEXT}")
        elif not isinstance(value.get("secret"), str) or not SECRET_NAME.fullmatch(value["secret"]):
            yield (f"headers.{key}.secret", "must name a server secret")
        elif client.secrets.get(value["secret"]) is None:
            yield (f"headers.{key}.secret", f"secret {value['secret']!r} is not configured")
    timeout = config.get("timeout_s")
    if timeout is not None and (not is_number(timeout) or not timeout > 0):
        yield ("timeout_s", "must be a positive number of seconds")
    statuses = config.get("expected_statuses")
    if statuses is not None and (
        not isinstance(statuses, list)
        or not all((s := as_int(v)) is not None and 100 <= s <= 599 for v in statuses)
    ):
        yield ("expected_statuses", "must be a list of HTTP statuses (100-599)")
    if config.get("response", "auto") not in _RESPONSES:
        yield ("response", f"must be one of {', '.join(_RESPONSES)}")
