"""The placeholder behind the Lambda Web Adapter: what ``run.sh`` starts in ``external`` mode
until a pipeline deploys the real package.

It must pass the adapter's readiness check, or every invocation would fail at start-up with a
generic error; after that it answers every request as the handler placeholder does: 503, with
the reason. Standard library only, like the rest of the placeholder.
"""

from __future__ import annotations

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from functions.placeholder.handler import MESSAGE

# Read by the Lambda Web Adapter too; set by the stack (contract.AdapterEnv).
PORT = "PORT"
READINESS_CHECK_PATH = "AWS_LWA_READINESS_CHECK_PATH"


class Placeholder(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        ready = self.path == os.environ.get(READINESS_CHECK_PATH, "/")
        error = {"error": {"code": "not_deployed", "message": MESSAGE}}
        data = json.dumps({} if ready else error).encode()
        self.send_response(200 if ready else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if not ready:
            self.send_header("Retry-After", "60")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

    def log_message(self, format: str, *args: object) -> None:
        print(json.dumps({"level": "WARNING", "message": MESSAGE, "request": format % args}))


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get(PORT, "8080"))), Placeholder)
    server.serve_forever()


if __name__ == "__main__":
    main()
