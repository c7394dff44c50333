"""Prints why the PostgreSQL or Redis test server cannot be reached (nothing if both can)."""

import socket
import sys
from urllib.parse import urlsplit


def unreachable(url: str, default_port: int) -> str | None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        return f"{parts.scheme} at {host}:{port} unreachable ({exc.strerror or exc})"
    return None


if __name__ == "__main__":
    problems = [p for p in (unreachable(sys.argv[1], 5432), unreachable(sys.argv[2], 6379)) if p]
    print("; ".join(problems))
