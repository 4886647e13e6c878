#!/usr/bin/env python3
"""A fake OpenAI-compatible chat-completions server for docket's tests.

    fake_openai.py --port 0 --portfile F [--tls CERT KEY] [--log REQLOG]
                   [--modes LIST]

Speaks POST /v1/chat/completions and /chat/completions.  What each request
gets is taken from a queue of modes (default "200" when the queue is empty):

    200            a normal answer; content = "echo: " + the last user message,
                   or, when response_format asks for a json_schema, the JSON
                   {"echo": <last user message>}
    429[:S]        429 with "Retry-After: S" (default 1)
    429date[:S]    429 with Retry-After as an HTTP-date S seconds ahead
    500, 502, 503, 504, 400, 401, 404
                   that status with an OpenAI-style error body
    slow:S         sleep S seconds, then a normal answer
    malformed      200 with a body that is not JSON
    truncated      200 announcing more bytes than it sends, then close
    nochoices      200 with valid JSON but no "choices"
    drop           close the connection without answering

A request whose last user message contains "[[mode:X]]" gets mode X instead
of the queue's next one.  Control (plain HTTP or TLS, same port):

    POST /control  {"modes": [...], "reset_log": bool}   replaces the queue
    GET  /stats    {"requests": n, "max_inflight": n, "queue": [...]}
                   (max_inflight: most requests of one mode answered at once)

Every chat request is logged (one JSON line per request, flushed before the
answer) to REQLOG: {"path", "auth", "client_port", "mode", "body"} where body
is the raw request body as text.  The port actually bound is written to the
portfile (atomically) once the server is listening.
"""
import argparse
import email.utils
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"queue": [], "requests": 0, "inflight": {}, "max_inflight": 0}
ARGS = None


def log_request(entry):
    if not ARGS.log:
        return
    with LOCK:
        with open(ARGS.log, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def send_json(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                self.send_json(200, {"requests": STATE["requests"],
                                     "max_inflight": STATE["max_inflight"],
                                     "queue": list(STATE["queue"])})
        else:
            self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        raw = self.read_body()
        if self.path == "/control":
            cmd = json.loads(raw or b"{}")
            with LOCK:
                if "modes" in cmd:
                    STATE["queue"] = list(cmd["modes"])
                if cmd.get("reset_log") and ARGS.log:
                    open(ARGS.log, "w").close()
                    STATE["requests"] = 0
                    STATE["max_inflight"] = 0
            self.send_json(200, {"ok": True})
            return
        if self.path not in ("/v1/chat/completions", "/chat/completions"):
            self.send_json(404, {"error": {"message": "no route " + self.path}})
            return
        text = raw.decode("utf-8", "replace")
        req = None
        last_user = ""
        try:
            req = json.loads(text)
            for m in req.get("messages", []):
                if m.get("role") == "user":
                    last_user = m.get("content", "")
        except ValueError:
            pass
        with LOCK:
            STATE["requests"] += 1
            if "[[mode:" in last_user:
                mode = last_user.split("[[mode:", 1)[1].split("]]", 1)[0]
            else:
                mode = STATE["queue"].pop(0) if STATE["queue"] else "200"
            # concurrency is counted per mode so that slow requests left
            # over from an earlier test do not count
            inflight = STATE["inflight"]
            inflight[mode] = inflight.get(mode, 0) + 1
            STATE["max_inflight"] = max(STATE["max_inflight"], inflight[mode])
        try:
            self.answer(text, req, last_user, mode)
        finally:
            with LOCK:
                STATE["inflight"][mode] -= 1

    def answer(self, text, req, last_user, mode):
        log_request({"path": self.path, "auth": self.headers.get("Authorization"),
                     "client_port": self.client_address[1], "mode": mode, "body": text})
        name, _, arg = mode.partition(":")
        if name == "slow":
            time.sleep(float(arg or "2"))
            name = "200"
        if name == "200":
            if req is None:
                self.send_json(400, {"error": {"message": "body is not json"}})
                return
            rf = req.get("response_format") or {}
            if rf.get("type") == "json_schema":
                content = json.dumps({"echo": last_user})
            else:
                content = "echo: " + last_user
            self.send_json(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": (req.get("model") or "fake") + "-served",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": len(content) // 4,
                          "total_tokens": len(text) // 4 + len(content) // 4}})
        elif name == "429":
            self.send_json(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                           {"Retry-After": arg or "1"})
        elif name == "429date":
            when = email.utils.formatdate(time.time() + float(arg or "1"), usegmt=True)
            self.send_json(429, {"error": {"message": "rate limited"}}, {"Retry-After": when})
        elif name in ("400", "401", "403", "404", "500", "502", "503", "504"):
            self.send_json(int(name), {"error": {"message": "fake error " + name, "type": "server"}})
        elif name == "malformed":
            data = b'{"choices": [ {"message": {"content": "unterminated'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif name == "nochoices":
            self.send_json(200, {"id": "x", "object": "chat.completion"})
        elif name == "truncated":
            data = b'{"id": "chatcmpl-test", "choices": [{"index": 0, "mess'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data) + 500))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            self.close_connection = True
        elif name == "drop":
            self.close_connection = True
        else:
            self.send_json(500, {"error": {"message": "unknown test mode " + mode}})


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--portfile", required=True)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--log")
    ap.add_argument("--modes", default="")
    ARGS = ap.parse_args()
    STATE["queue"] = [m for m in ARGS.modes.split(",") if m]
    if ARGS.log:
        open(ARGS.log, "a").close()
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    if ARGS.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls[0], ARGS.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    tmp = ARGS.portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, ARGS.portfile)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
