"""The stack's load balancer: a config for Debian's nginx in front of the API replicas.

- Passive health checks: a replica that refuses or drops a connection is marked down for a moment
  (`max_fails`/`fail_timeout`) and the request goes to the next one (`proxy_next_upstream`), so a
  replica killed with SIGKILL is routed around. A POST already sent to a replica that died is not
  resent (it may have been applied); the client retries it with its Idempotency-Key.
- When no replica can answer, nginx's own 502/504 become `503 {"error": …}` with Retry-After: the
  same answer the API gives when Redis is down, which clients already retry.
- SSE routes are not buffered and may stay open for hours; every other request has short timeouts.
- Limits are enforced before a request reaches Python: header size, body size
  (`LUNOS_MAX_BODY_BYTES`), and slow clients (header and body timeouts); each refusal is JSON.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

NGINX = "/usr/sbin/nginx"

# Routes that answer with Server-Sent Events.
SSE_LOCATION = r"~ ^/v1/video/(events|generations/[^/]+/events)$"


def _json_error(status: int, message: str) -> str:
    return f'default_type application/json; return {status} \'{{"error": "{message}"}}\';'


def nginx_config(
    prefix: Path,
    listen_port: int,
    upstream_ports: list[int],
    max_body_bytes: int,
    largest_body_bytes: int,
    max_connections: int | None = None,
) -> str:
    """The whole nginx.conf; `prefix` holds its pid file, logs and temp files."""
    open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if max_connections is None:
        # Per worker: every connection is a file; leave room for logs and listening sockets.
        max_connections = max(1024, open_files - 64)
    # A proxied stream takes two connections, so idle SSE streams need room: two workers at least,
    # and `reuseport` has the kernel spread new connections evenly over them.
    workers = max(2, os.cpu_count() or 1)
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;" for port in upstream_ports
    )
    # As root, nginx's workers drop to an unprivileged user (Debian names its group nogroup).
    user = "user nobody nogroup;" if os.geteuid() == 0 else ""
    proxied = """
            proxy_pass http://lunos_api;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 5s;"""
    return f"""# Written by `lunos-events stack` at each start; edits are overwritten.
{user}
worker_processes {workers};
worker_rlimit_nofile {max_connections + 64};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;

events {{
    worker_connections {max_connections};
}}

http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    # Limits: requests beyond them never reach the API.
    # Submits carrying images may be larger (the API checks which); those spool to disk here.
    client_max_body_size {largest_body_bytes};
    client_body_buffer_size {max_body_bytes};
    client_header_buffer_size 4k;
    # The same bounds as the API's own (lunos_events/http_limits.py): a 64 KiB head, 5 s to send it,
    # 30 s for a body.
    large_client_header_buffers 4 64k;
    client_header_timeout 5s;
    client_body_timeout 30s;
    send_timeout 30s;
    keepalive_timeout 65s;
    keepalive_requests 100000;

    upstream lunos_api {{
{servers}
        keepalive 64;
    }}

    server {{
        listen 127.0.0.1:{listen_port} backlog=4096 reuseport;

        error_page 502 504 =503 @unavailable;
        error_page 413 @too_large;
        error_page 400 @bad_request;
        error_page 494 =431 @head_too_large;
        error_page 408 @timeout;

        location / {{{proxied}
            proxy_read_timeout 60s;
            proxy_send_timeout 60s;
        }}

        location {SSE_LOCATION} {{{proxied}
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }}

        location @unavailable {{
            add_header Retry-After 1 always;
            {_json_error(503, "Service temporarily unavailable, retry shortly")}
        }}
        location @too_large {{ {_json_error(413, "Request body too large")} }}
        location @bad_request {{ {_json_error(400, "Bad request: malformed headers")} }}
        location @head_too_large {{ {_json_error(431, "Request header fields too large")} }}
        location @timeout {{ {_json_error(408, "Request timed out")} }}
    }}
}}
"""


def nginx_command(prefix: Path) -> list[str]:
    """nginx in the foreground (the stack supervises it) with its config in `prefix`."""
    return [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(prefix / "nginx.conf"),
            "-g", "daemon off;"]  # fmt: skip


def write_nginx_config(
    prefix: Path, listen_port: int, upstream_ports: list[int], max_body_bytes: int, largest_body_bytes: int
) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    path = prefix / "nginx.conf"
    path.write_text(nginx_config(prefix, listen_port, upstream_ports, max_body_bytes, largest_body_bytes))
    return path
