"""The baseline: a plain FastAPI app that calls ONNX Runtime once per request.

What most people write first, and what the benchmark compares modelserve against:
the same digit model, the same request and answer format as ``/v1/digit:predict``,
no batching, the same uvicorn settings (uvloop, httptools, one worker, no access
log). ``GET /empty`` answers ``{}`` and measures the bare HTTP round trip.

    python -m loadtest.baseline_app --model models/digit/1/model.onnx --port 8001
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from fastapi import FastAPI, HTTPException, Request

from loadtest.bare_model import OrtModel

log = logging.getLogger(__name__)


def create_app(model_path: Path, *, threads: int = 1) -> FastAPI:
    model = OrtModel(model_path, threads=threads)
    app = FastAPI(title="baseline: one ONNX Runtime call per request")

    @app.get("/empty")
    async def empty() -> dict:
        return {}

    @app.get("/ready")
    async def ready() -> dict:
        return {"ready": True}

    @app.post("/v1/digit:predict")
    async def predict(request: Request) -> dict:
        body = await request.json()
        try:
            pixels = np.asarray(body["input"], dtype=np.float32).reshape(1, 784)
        except (KeyError, TypeError, ValueError) as exc:
            raise HTTPException(400, f"input must be 784 numbers: {exc}") from exc
        return model.digit_answer(pixels)

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.model, threads=args.threads), host="127.0.0.1", port=args.port,
                loop="uvloop", http="httptools", access_log=False, log_level="warning",
                workers=1, server_header=False, date_header=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
