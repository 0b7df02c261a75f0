"""Container health check: exit 0 when the server answers /v2/health/ready with 200.

Run by the image's HEALTHCHECK with the image's own Python (slim bases have no curl).
Reads the same MODELSERVE_* variables as the server, so a changed port is followed.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def health_url() -> str:
    host = os.environ.get("MODELSERVE_HOST", "127.0.0.1")
    # A wildcard bind is reachable on loopback; a specific address is used as given.
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = os.environ.get("MODELSERVE_HTTP_PORT", "8000")
    path = os.environ.get("MODELSERVE_HEALTHCHECK_PATH", "/v2/health/ready")
    return f"http://{host}:{port}{path}"


def main() -> int:
    url = health_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
