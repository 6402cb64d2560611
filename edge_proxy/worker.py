"""The edge relay as a Cloudflare Python Worker.

A thin shell around ``relay_core``: it reads the configuration from the Worker's bindings
(``RELAY_SECRET`` secret, ``UPSTREAMS`` variable, ``AI`` binding), asks the policy for a
decision and moves JavaScript objects around. Bodies are never read in Python: the incoming
``ReadableStream`` is handed to ``fetch`` and the upstream's ``ReadableStream`` is handed
back to the ``Response``, so streams pass through at the runtime's pace. The exception is the
Workers AI binding (``POST /cfai-binding/<model>``), whose small JSON inputs are parsed.

This module only runs inside the Workers runtime (``js``, ``pyodide`` and ``workers`` exist
nowhere else) and cannot be imported under CPython; see ``edge_proxy/README.md`` for how to
deploy it and ``wrangler.toml`` beside it for its configuration.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Final

# The three modules below exist only inside the Workers runtime, which ships no type stubs.
import js  # type: ignore[import-not-found]
import pyodide.ffi  # type: ignore[import-not-found]
from workers import Response, WorkerEntrypoint  # type: ignore[import-not-found]

if TYPE_CHECKING:
    from edge_proxy import relay_core
else:
    # Wrangler uploads the modules of this folder at the top level of the bundle.
    import relay_core

SECRET_BINDING: Final = "RELAY_SECRET"  # noqa: S105 - the name of a binding, not a secret
"""Worker secret holding the shared relay secret (``wrangler secret put RELAY_SECRET``)."""

UPSTREAMS_BINDING: Final = "UPSTREAMS"
"""Worker variable holding the upstream table as a JSON object."""

AI_BINDING: Final = "AI"
"""Workers AI binding used by ``/cfai-binding/<model>``."""


class Default(WorkerEntrypoint):  # type: ignore[misc]  # the runtime's base class is untyped
    """Relay each request as ``relay_core.RelayPolicy`` decides."""

    async def fetch(self, request: Any) -> Any:
        """Answer one request: a refusal, a Workers AI binding call, or a relayed fetch."""
        try:
            policy = _policy(
                _binding_str(self.env, SECRET_BINDING), _binding_str(self.env, UPSTREAMS_BINDING)
            )
        except relay_core.UpstreamTableError as exc:
            return _refuse(relay_core.Refusal(500, "upstreams_invalid", str(exc)))

        js_request = request.js_object
        url = js.URL.new(js_request.url)
        method = str(js_request.method)
        path = str(url.pathname)
        query = str(url.search).removeprefix("?")
        headers = [(str(name), str(value)) for name, value in js_request.headers]

        call = policy.decide_binding(method, path, headers)
        if isinstance(call, relay_core.Refusal):
            return _refuse(call)
        if call is not None:
            return await self._run_binding(call, js_request)

        decision = policy.decide(method, path, query, headers)
        if isinstance(decision, relay_core.Refusal):
            return _refuse(decision)
        return await _forward(decision, js_request)

    async def _run_binding(self, call: relay_core.BindingCall, js_request: Any) -> Any:
        ai: Any = getattr(self.env, AI_BINDING, None)
        if _is_null(ai):
            message = f"the Workers AI binding `{AI_BINDING}` is not configured"
            return _refuse(relay_core.Refusal(500, "binding_not_configured", message))

        text = str(await js_request.text())
        inputs = relay_core.parse_binding_inputs(text)
        if isinstance(inputs, relay_core.Refusal):
            return _refuse(inputs)

        try:
            result = await ai.run(call.model, js.JSON.parse(text))
        except pyodide.ffi.JsException as exc:
            message = f"Workers AI failed on `{call.model}`: {exc.message}"
            return _refuse(relay_core.Refusal(502, "binding_failed", message))

        if inputs.get("stream") is True:
            # A ReadableStream of server-sent events, passed through untouched.
            return Response(
                result,
                headers=[("content-type", "text/event-stream"), ("cache-control", "no-cache")],
            )
        return Response(
            str(js.JSON.stringify(result)), headers=[("content-type", "application/json")]
        )


async def _forward(forward: relay_core.Forward, js_request: Any) -> Any:
    init: dict[str, Any] = {
        "method": js_request.method,
        "headers": js.Headers.new(pyodide.ffi.to_js([list(pair) for pair in forward.headers])),
        # A 3xx goes back to the caller; following it could lead the Worker anywhere.
        "redirect": "manual",
    }
    if not _is_null(js_request.body):
        # The incoming stream itself, so the runtime keeps its length and never buffers it.
        init["body"] = js_request.body

    try:
        upstream = await js.fetch(
            forward.url, pyodide.ffi.to_js(init, dict_converter=js.Object.fromEntries)
        )
    except pyodide.ffi.JsException as exc:
        message = f"upstream `{forward.upstream}` failed: {exc.name}"
        return _refuse(relay_core.Refusal(502, "upstream_unreachable", message))

    pairs = [(str(name), str(value)) for name, value in upstream.headers]
    # The Workers fetch has decoded the body already: its length and encoding are gone.
    headers = relay_core.filter_response_headers(pairs, body_decoded=True)
    body = None if _is_null(upstream.body) else upstream.body
    return Response(body, status=int(upstream.status), headers=list(headers))


def _refuse(refusal: relay_core.Refusal) -> Any:
    return Response(refusal.body(), status=refusal.status, headers=refusal.headers())


@functools.lru_cache(maxsize=4)
def _policy(secret: str | None, upstreams_json: str | None) -> relay_core.RelayPolicy:
    """Build the policy once per configuration rather than once per request."""
    if upstreams_json:
        return relay_core.RelayPolicy(
            secret=secret, upstreams=relay_core.parse_upstreams(upstreams_json)
        )
    return relay_core.RelayPolicy(secret=secret)


def _binding_str(env: Any, name: str) -> str | None:
    value = getattr(env, name, None)
    return None if _is_null(value) else str(value)


def _is_null(value: Any) -> bool:
    # JavaScript null arrives as `pyodide.ffi.jsnull` in newer Pyodide, as None in older.
    return value is None or value is getattr(pyodide.ffi, "jsnull", None)
