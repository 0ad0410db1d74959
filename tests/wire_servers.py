"""Real HTTP servers on 127.0.0.1 speaking the OpenAI chat-completions and Anthropic messages wire
protocols, with scripted replies, scripted failures and per-request delays. For tests and benchmarks.

    with OpenAIServer(["reply one", "reply two"], fail_first=[429]) as server:
        provider = provider_from_spec("openai:gpt-4o-mini", base_url=server.url)
        ...
        assert len(server.requests) == 2
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Replies = Sequence[str] | Callable[[dict], str]  # a script, or body -> reply text
Failure = int | tuple[int, str] | bytes  # HTTP status, optionally with the error code/type; or a raw 200 body


@dataclass(frozen=True)
class Raw:
    """A body sent as these exact bytes (not JSON-encoded): malformed or undecodable replies."""

    data: bytes


def recording_policy(**overrides: Any) -> tuple[Any, list[float]]:
    """A RetryPolicy whose waits are recorded instead of slept: (policy, waits)."""
    from looplab.models.retry import RetryPolicy

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return RetryPolicy(**{"base_delay_s": 0.01, "sleep": sleep, **overrides}), waits


@dataclass
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() on arrival


class _WireServer:
    endpoint = ""  # POST path that answers completions

    def __init__(
        self,
        replies: Replies,
        *,
        delay_s: float | Sequence[float] = 0.0,
        fail_first: Sequence[Failure] = (),
        retry_after: str | None = None,
        usage: dict[str, int] | None = None,
        model: str | None = None,
    ) -> None:
        """delay_s: seconds before answering, one value for all or one per request (0 after the list).
        fail_first: the first requests get these statuses instead of a reply (429 gets Retry-After if set);
            a bytes entry is sent as is with status 200 (a body that is not JSON, or not UTF-8).
        usage: fixed usage numbers for every reply (wire names); default: ~4 characters per token.
        model: the model name to report; default: echo the request's model."""
        self.replies = replies
        self.delay_s = delay_s
        self.fail_first = list(fail_first)
        self.retry_after = retry_after
        self.usage = usage
        self.model = model
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._replied = 0
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---
    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """What to pass as base_url."""
        return self.root_url

    def start(self) -> _WireServer:
        self._httpd = _Server(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a handler still sleeping must not hold up stop()
        # A short poll interval: stop() returns in ~50 ms instead of serve_forever's default 0.5 s.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in a delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> _WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- behaviour ---
    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> tuple[int, dict, Any]:
        """Record the request, wait its delay, answer (status, headers, json body)."""
        with self._lock:
            index = len(self.requests)
            self.requests.append(Recorded(method, path, headers, body, time.monotonic()))
        delay = self._delay(index)
        if delay > 0 and self._stopping.wait(delay):
            return 503, {}, self.error_body(503, "server stopping")
        if method == "GET":
            return self.get(path)
        if path != self.endpoint:
            return 404, {}, self.error_body(404, f"no such endpoint {path}")
        if index < len(self.fail_first):
            failure = self.fail_first[index]
            if isinstance(failure, bytes):
                return 200, {}, Raw(failure)
            status, code = failure if isinstance(failure, tuple) else (failure, None)
            extra = {"Retry-After": self.retry_after} if status == 429 and self.retry_after else {}
            return status, extra, self.error_body(status, f"scripted failure {status}", code)
        if not isinstance(body, dict):
            return 400, {}, self.error_body(400, "body is not a JSON object")
        with self._lock:
            n = self._replied
            self._replied += 1
        if callable(self.replies):
            text = self.replies(body)
        elif n < len(self.replies):
            text = self.replies[n]
        else:
            return 400, {}, self.error_body(400, f"scripted replies exhausted after {len(self.replies)}")
        return 200, {}, self.reply_body(body, text, n)

    def _delay(self, index: int) -> float:
        if isinstance(self.delay_s, int | float):
            return float(self.delay_s)
        return float(self.delay_s[index]) if index < len(self.delay_s) else 0.0

    def get(self, path: str) -> tuple[int, dict, Any]:
        return 404, {}, self.error_body(404, f"no such endpoint {path}")

    def error_body(self, status: int, message: str, code: str | None = None) -> Any:
        raise NotImplementedError

    def reply_body(self, request: dict, text: str, n: int) -> Any:
        raise NotImplementedError


def _estimate_prompt_tokens(body: dict) -> int:
    parts = [m.get("content", "") for m in body.get("messages", []) if isinstance(m, dict)]
    parts.append(body.get("system", "") if isinstance(body.get("system"), str) else "")
    return max(1, sum(len(p) for p in parts if isinstance(p, str)) // 4)


class OpenAIServer(_WireServer):
    """POST /v1/chat/completions, GET /v1/models. url ends in /v1, as OpenAI base URLs do."""

    endpoint = "/v1/chat/completions"

    @property
    def url(self) -> str:
        return f"{self.root_url}/v1"

    def get(self, path: str) -> tuple[int, dict, Any]:
        if path == "/v1/models":
            model = self.model or "test-model"
            return 200, {}, {"object": "list", "data": [{"id": model, "object": "model", "owned_by": "test"}]}
        return super().get(path)

    def error_body(self, status: int, message: str, code: str | None = None) -> Any:
        kind = {401: "invalid_request_error", 429: "rate_limit_error"}.get(status, "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": code or kind}}

    def reply_body(self, request: dict, text: str, n: int) -> Any:
        usage = self.usage or {"prompt_tokens": _estimate_prompt_tokens(request), "completion_tokens": len(text) // 4}
        prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
        return {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model or request.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": usage.get("cached_tokens", 0)},
            },
        }


class AnthropicServer(_WireServer):
    """POST /v1/messages. url is the root, as Anthropic base URLs are."""

    endpoint = "/v1/messages"

    def error_body(self, status: int, message: str, code: str | None = None) -> Any:
        kind = code or {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            429: "rate_limit_error",
            529: "overloaded_error",
        }.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def reply_body(self, request: dict, text: str, n: int) -> Any:
        usage = self.usage or {"input_tokens": _estimate_prompt_tokens(request), "output_tokens": len(text) // 4}
        return {
            "id": f"msg_{n:06d}",
            "type": "message",
            "role": "assistant",
            "model": self.model or request.get("model", "test-model"),
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
                "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            },
        }


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops connections when a benchmark fans out


def _make_handler(owner: _WireServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
        disable_nagle_algorithm = True  # headers and body go out separately; Nagle would add ~40 ms

        def do_GET(self) -> None:
            self._serve("GET", None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = raw.decode(errors="replace")
            self._serve("POST", body)

        def _serve(self, method: str, body: Any) -> None:
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = owner.handle(method, path, headers, body)
            data = payload.data if isinstance(payload, Raw) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
