"""A fake OpenAI API (Chat Completions and Responses) on 127.0.0.1 (an
ephemeral port), for the real SDK to talk real HTTP to.

Tests queue replies (`FakeOpenAI.reply`) and read what the SDK sent
(`FakeOpenAI.requests`). With no reply queued, the fake answers "Hello!"
in the format of the path and of `stream` (usage: 10 prompt and 5
completion tokens). Helpers build the bodies: `chat_completion` and
`chat_chunks` (Chat Completions, whole and streamed), `response` and
`response_events` (Responses API, whole and streamed) and `error`. A reply
can wait before its first byte, and a stream can break off midway (its
chunked body never finished).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "DEFAULT_TEXT",
    "FakeOpenAI",
    "Recorded",
    "Reply",
    "chat_chunks",
    "chat_completion",
    "chat_usage",
    "error",
    "function_call",
    "response",
    "response_events",
    "response_usage",
    "tool_call",
]

DEFAULT_TEXT = "Hello!"
CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
# An SSE event: (event name or "", data: a JSON value or a raw string such as "[DONE]").
Event = tuple[str, Any]


@dataclass(frozen=True)
class Reply:
    """One answer: JSON `body`, or SSE `events`. `break_after`: send that
    many events, then drop the connection mid-body. `delay`: seconds before
    the status line."""

    status: int = 200
    body: Any = None
    events: Sequence[Event] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    break_after: int | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: Any


# -- Chat Completions -------------------------------------------------------------------


def chat_usage(
    prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0, cache_write: int = 0
) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def tool_call(id: str, name: str, arguments: Mapping[str, Any] | str) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments))
    return {"id": id, "type": "function", "function": {"name": name, "arguments": text}}


def chat_completion(
    text: str | None = DEFAULT_TEXT,
    *,
    model: str = "gpt-4o-mini",
    usage: Mapping[str, Any] | None = None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    finish_reason: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [dict(call) for call in tool_calls]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
                "logprobs": None,
            }
        ],
        "usage": dict(usage) if usage is not None else chat_usage(10, 5),
    }


def chat_chunks(
    pieces: Sequence[str] = ("Hel", "lo!"),
    *,
    model: str = "gpt-4o-mini",
    usage: Mapping[str, Any] | None = None,
    tool_calls: Sequence[Mapping[str, Any]] = (),
    finish_reason: str | None = None,
) -> list[Event]:
    """The SSE events of a streamed completion: a role chunk, one chunk per
    text piece, tool-call chunks (name first, arguments in two halves), a
    finish chunk, the usage chunk (no choices) and [DONE]."""

    def chunk(delta: Mapping[str, Any], finish: str | None = None) -> Event:
        choice = {"index": 0, "delta": dict(delta), "finish_reason": finish, "logprobs": None}
        return ("", {**base, "choices": [choice]})

    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
    }
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in pieces]
    for index, call in enumerate(tool_calls):
        function = call["function"]
        head = {"index": index, "id": call["id"], "type": "function"}
        events.append(
            chunk(
                {"tool_calls": [{**head, "function": {"name": function["name"], "arguments": ""}}]}
            )
        )
        half = len(function["arguments"]) // 2
        for part in (function["arguments"][:half], function["arguments"][half:]):
            events.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
            )
    events.append(chunk({}, finish_reason or ("tool_calls" if tool_calls else "stop")))
    final_usage = dict(usage) if usage is not None else chat_usage(10, 5)
    events.append(("", {**base, "choices": [], "usage": final_usage}))
    events.append(("", "[DONE]"))
    return events


# -- Responses API ------------------------------------------------------------------------


def response_usage(
    input: int, output: int, *, cached: int = 0, reasoning: int = 0, cache_write: int = 0
) -> dict[str, Any]:
    return {
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": cache_write},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": input + output,
    }


def function_call(call_id: str, name: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(dict(arguments)),
        "status": "completed",
    }


def response(
    text: str | None = DEFAULT_TEXT,
    *,
    model: str = "gpt-4.1",
    usage: Mapping[str, Any] | None = None,
    calls: Sequence[Mapping[str, Any]] = (),
    status: str = "completed",
    incomplete_reason: str | None = None,
    reasoning: bool = False,
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if reasoning:
        output.append({"type": "reasoning", "id": "rs_fake", "summary": []})
    if text is not None:
        content = [{"type": "output_text", "text": text, "annotations": []}]
        output.append(
            {
                "type": "message",
                "id": "msg_fake",
                "role": "assistant",
                "status": "completed",
                "content": content,
            }
        )
    output += [dict(call) for call in calls]
    return {
        "id": "resp_fake",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": model,
        "status": status,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "error": None,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": dict(usage) if usage is not None else response_usage(10, 5),
    }


def response_events(
    final: Mapping[str, Any], pieces: Sequence[str] = ("Hel", "lo!")
) -> list[Event]:
    """The SSE events of a streamed response: created, text deltas, then
    response.completed (or .incomplete / .failed, after the final status)
    carrying the whole response with its usage."""
    started = {**final, "status": "in_progress", "output": [], "usage": None}
    events: list[Event] = [("response.created", {"type": "response.created", "response": started})]
    for number, piece in enumerate(pieces):
        delta = {
            "type": "response.output_text.delta",
            "item_id": "msg_fake",
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
            "sequence_number": number + 1,
        }
        events.append(("response.output_text.delta", delta))
    kind = {"completed": "response.completed", "incomplete": "response.incomplete"}.get(
        str(final.get("status")), "response.failed"
    )
    done = {"type": kind, "response": dict(final), "sequence_number": len(pieces) + 1}
    events.append((kind, done))
    return events


def error(message: str, type: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


# -- the server ----------------------------------------------------------------------------


class FakeOpenAI:
    """Use as a context manager: serves while inside."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def reply(self, *replies: Reply) -> None:
        """Queues replies, answered in order (any path), before the defaults."""
        with self._lock:
            self._replies.extend(replies)

    def bodies(self) -> list[Any]:
        with self._lock:
            return [recorded.body for recorded in self.requests]

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self._replies:
                return self._replies.popleft()
        return _default(recorded)


def _default(recorded: Recorded) -> Reply:
    body = recorded.body if isinstance(recorded.body, dict) else {}
    stream = bool(body.get("stream"))
    if recorded.path == CHAT_PATH:
        model = str(body.get("model", "gpt-4o-mini"))
        if stream:
            return Reply(events=chat_chunks(model=model))
        return Reply(body=chat_completion(model=model))
    if recorded.path == RESPONSES_PATH:
        final = response(model=str(body.get("model", "gpt-4.1")))
        return Reply(events=response_events(final)) if stream else Reply(body=final)
    return Reply(status=404, body=error(f"no route {recorded.path}", "invalid_request_error"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping in a delay must not hold up the test
    fake: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout test) is expected


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.fake._next(Recorded("POST", self.path, headers, body))
        if reply.delay:
            time.sleep(reply.delay)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if reply.events is None:
                self._send_json(reply)
            else:
                self._send_events(reply)

    def _send_json(self, reply: Reply) -> None:
        data = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_events(self, reply: Reply) -> None:
        assert reply.events is not None
        self.send_response(reply.status)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for count, event in enumerate(_sse(reply.events)):
            if reply.break_after is not None and count >= reply.break_after:
                # Neither the remaining events nor the chunked body's end: a cut connection.
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


def _sse(events: Sequence[Event]) -> Iterator[bytes]:
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        head = f"event: {name}\n" if name else ""
        yield f"{head}data: {text}\n\n".encode()
