"""The provider simulator: a fake upstream LLM provider for tests, benchmarks and new users.

One ASGI application (`create_app`) answers the OpenAI, Anthropic Messages, Gemini and
Cloudflare Workers AI APIs from one root, deterministically and for any model name, with
exact cl100k usage; a `/_fault/<spec>/` path prefix makes one request misbehave, and
`/_replay/<id>/` writes scripted bytes. See `gateway.simulator.app` for the paths,
`gateway.simulator.faults` for the fault keys and `gateway.simulator.composer` for the
answer and token-count rules. Run it with `serve`, `python -m gateway.simulator` or
`tollgate simulate`.
"""

from __future__ import annotations

from gateway.simulator.app import create_app

__all__ = ("create_app", "serve")

TARGET = "gateway.simulator.app:create_app"
"""The granian factory target of the application."""


def serve(host: str = "127.0.0.1", port: int = 9000, workers: int = 1) -> None:
    """Run the simulator under granian until interrupted.

    The request log and the replay scripts live in each worker process, so tests that use them
    run one worker.
    """
    from granian import Granian
    from granian.constants import Interfaces

    Granian(
        target=TARGET,
        factory=True,
        interface=Interfaces.ASGI,
        address=host,
        port=port,
        workers=workers,
        backlog=2048,
    ).serve()
