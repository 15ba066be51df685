"""Serving a finished experiment: export its best model, load it, answer HTTP requests.

``shopaug.serve.export`` is light (called by the experiment runner); the HTTP app in
``shopaug.serve.app`` imports fastapi and is only loaded by ``shopaug serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          llm_options: dict[str, Any] | None = None) -> int:
    """``shopaug serve``: load (refusing bad artifacts before binding), then run uvicorn
    (one worker, asyncio loop) until interrupted."""
    import json

    from shopaug.errors import ShopAugError

    try:
        import uvicorn

        from shopaug.serve.app import create_app, run_llm_config
    except ImportError as exc:
        raise ShopAugError(f"serving needs fastapi and uvicorn ({exc}). Fix: pip install "
                           "'shopaug[server]'") from exc
    app = create_app(run_dir, run_llm_config(Path(run_dir), llm_options))
    _check_can_listen(host, port)
    print(json.dumps({"serving": str(run_dir), "url": f"http://{host}:{port}/",
                      "best": app.state.holder.state.best}), flush=True)
    uvicorn.run(app, host=host, port=port, loop="asyncio", log_level="warning")
    return 0


def _check_can_listen(host: str, port: int) -> None:
    """Bind once before uvicorn does: its own failure is a log line and exit status 3."""
    import socket

    from shopaug.errors import ShopAugError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except OSError as exc:
        raise ShopAugError(f"cannot listen on {host}:{port}: {exc.strerror or exc}. Fix: "
                           "choose a free --port, or a --host address of this machine") from None
