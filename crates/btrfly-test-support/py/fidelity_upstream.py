"""An HTTPS upstream with the behaviours real servers have and nginx cannot
produce on demand, for tests/fidelity.rs.

usage: python3 fidelity_upstream.py CERT KEY [--plain]

Prints `listening on PORT` once it accepts connections, then serves until
killed. TLS offers only `http/1.1` by ALPN, and, like every Python ssl
server, closes connections without `close_notify`. HTTP/1.1 keep-alive.

Routes (bodies are deterministic; `data(n, seed)` below):

  POST /upload            reads the body (a `100 Continue` first when asked
                          for), answers 200 with the body's sha256 and size
  GET  /interim           102 Processing, 103 Early Hints, then 200
  GET  /negotiate         Vary: Accept; JSON, octet-stream or text by Accept
  GET  /coded             Vary: Accept-Encoding; gzip when accepted
  GET  /flaky, /flaky/<wheel>  200 the first time, 503 every later time
  GET  /close             close-delimited body (no Content-Length), then
                          the TLS connection closes without close_notify
  GET  /truncated         Content-Length 100000, 50000 bytes, then a close
  GET  /chunked           a chunked body
  GET  /latin1            a header value with a byte that is not UTF-8
  GET  /file.bin          100000 bytes (ranges are cut by btrfly in playback)
  pip (PEP 503):
  GET  /simple/demo-fid/                 page linking /dl/<wheel>#sha256=…
  GET|HEAD /dl/<wheel>                   302 to /storage/<wheel>?sig=…
  GET  /dl/missing-1.0-py3-none-any.whl  404
  GET  /storage/<wheel>                  the wheel (any query)
  devpi-style:
  GET  /root/pypi/+simple/demo-fid       301 to …/demo-fid/
  GET  /root/pypi/+simple/demo-fid/      page linking ../../+f/ab/<wheel>
  GET  /root/pypi/+f/ab/<wheel>          the wheel
  GET  /__ready                          200
  hardening (tests/hardening.rs):
  GET  /slow              waits 1.5 s before its head, then 200000 bytes
                          over about 1 s
  GET  /__hits/slow       how many requests /slow got so far
  GET  /simple/demo-bad/  page linking /bad/<wheel>#sha256=<the wheel's>,
                          and 5000 other wheels (about 700 kB)
  GET  /bad/<wheel>       other bytes than the page announced
"""

import base64
import gzip
import hashlib
import http.server
import io
import json
import random
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zipfile

WHEEL = "demo_fid-1.0-py3-none-any.whl"
HITS = {}
HITS_LOCK = threading.Lock()


def data(n, seed):
    return random.Random(seed).randbytes(n)


def build_wheel():
    """A minimal valid wheel of demo-fid 1.0, the same bytes every time."""
    info = "demo_fid-1.0.dist-info"
    files = {
        "demo_fid/__init__.py": b"VALUE = 1\n",
        f"{info}/METADATA": b"Metadata-Version: 2.1\nName: demo-fid\nVersion: 1.0\n",
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: btrfly-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, body in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(body)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in files.items():
            zi = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, body)
    return out.getvalue()


WHEEL_BYTES = build_wheel()
WHEEL_SHA = hashlib.sha256(WHEEL_BYTES).hexdigest()


def hit(path):
    with HITS_LOCK:
        HITS[path] = HITS.get(path, 0) + 1
        return HITS[path]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_body(self, status, body, headers=(), content_type="application/octet-stream"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def raw(self, text):
        self.wfile.write(text.encode("latin-1"))

    def do_POST(self):
        if self.path != "/upload":
            return self.send_body(404, b"no\n")
        n = int(self.headers.get("Content-Length", "0"))
        body = b""
        while len(body) < n:
            chunk = self.rfile.read(min(65536, n - len(body)))
            if not chunk:
                break
            body += chunk
        answer = json.dumps(
            {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}
        ).encode()
        self.send_body(200, answer, content_type="application/json")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path, _, query = self.path.partition("?")
        path = urllib.parse.unquote(path)
        if path == "/__ready":
            return self.send_body(200, b"ok\n", content_type="text/plain")
        if path == "/interim":
            self.raw("HTTP/1.1 102 Processing\r\n\r\n")
            self.raw("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            self.wfile.flush()
            return self.send_body(200, b"the final answer\n", content_type="text/plain")
        if path == "/negotiate":
            accept = self.headers.get("Accept", "")
            vary = [("Vary", "Accept")]
            if "application/json" in accept:
                return self.send_body(200, b'{"asset": "metadata"}\n', vary, "application/json")
            if "application/octet-stream" in accept:
                return self.send_body(200, data(3000, 7), vary)
            return self.send_body(200, b"asset, as text\n", vary, "text/plain")
        if path == "/coded":
            vary = [("Vary", "Accept-Encoding")]
            plain = b"compressible text\n" * 200
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                return self.send_body(
                    200, gzip.compress(plain, mtime=0), vary + [("Content-Encoding", "gzip")], "text/plain"
                )
            return self.send_body(200, plain, vary, "text/plain")
        if path in ("/flaky", f"/flaky/{WHEEL}"):
            if hit(path) == 1:
                return self.send_body(200, b"the good answer\n", content_type="text/plain")
            return self.send_body(503, b"try later\n", content_type="text/plain")
        if path == "/close":
            self.raw("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
            self.wfile.write(data(70000, 3))
            self.wfile.flush()
            self.close_connection = True
            return
        if path == "/truncated":
            self.raw("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
            self.wfile.write(data(50000, 4))
            self.wfile.flush()
            self.close_connection = True
            return
        if path == "/chunked":
            self.raw("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
            for part in (b"first part\n", b"second part\n"):
                self.raw(f"{len(part):x}\r\n")
                self.wfile.write(part + b"\r\n")
            self.raw("0\r\n\r\n")
            return
        if path == "/latin1":
            self.wfile.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Disposition: attachment; filename=\"caf\xe9.txt\"\r\n"
                b"Content-Length: 6\r\n\r\ncafe!\n"
            )
            return
        if path == "/__hits/slow":
            with HITS_LOCK:
                n = HITS.get("/slow", 0)
            return self.send_body(200, f"{n}\n".encode(), content_type="text/plain")
        if path == "/slow":
            hit(path)
            time.sleep(1.5)
            body = data(200000, 6)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(0, len(body), 20000):
                self.wfile.write(body[i : i + 20000])
                self.wfile.flush()
                time.sleep(0.1)
            return
        if path == "/simple/demo-bad/":
            # Thousands of other links: reading the page back for its hints
            # takes a while after the client got it.
            others = "".join(
                f'<a href="/other/demo_fid-0.{i}-py3-none-any.whl#sha256={WHEEL_SHA}">0.{i}</a>\n'
                for i in range(5000)
            )
            page = (
                "<!DOCTYPE html><html><body>"
                f'<a href="/bad/{WHEEL}#sha256={WHEEL_SHA}">{WHEEL}</a>\n'
                f"{others}</body></html>\n"
            ).encode()
            return self.send_body(200, page, content_type="text/html")
        if path == f"/bad/{WHEEL}":
            return self.send_body(200, WHEEL_BYTES + b"tampered")
        if path == "/file.bin":
            return self.send_body(200, data(100000, 5))
        # --- pip ---
        if path == "/simple/demo-fid/":
            page = (
                "<!DOCTYPE html><html><body>"
                f'<a href="/dl/{WHEEL}#sha256={WHEEL_SHA}">{WHEEL}</a>'
                "</body></html>\n"
            ).encode()
            return self.send_body(200, page, content_type="text/html")
        if path == f"/dl/{WHEEL}":
            self.send_response(302)
            self.send_header("Location", f"/storage/{WHEEL}?sig={hit(path)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/dl/missing-1.0-py3-none-any.whl":
            return self.send_body(404, b"not here\n", content_type="text/plain")
        if path == f"/storage/{WHEEL}":
            return self.send_body(200, WHEEL_BYTES)
        if path == "/root/pypi/+simple/demo-fid":
            self.send_response(301)
            self.send_header("Location", "/root/pypi/+simple/demo-fid/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/root/pypi/+simple/demo-fid/":
            page = (
                "<!DOCTYPE html><html><body>"
                f'<a href="../../+f/ab/{WHEEL}#sha256={WHEEL_SHA}">{WHEEL}</a>'
                "</body></html>\n"
            ).encode()
            return self.send_body(200, page, content_type="text/html")
        if path == f"/root/pypi/+f/ab/{WHEEL}":
            return self.send_body(200, WHEEL_BYTES)
        return self.send_body(404, b"unknown path\n", content_type="text/plain")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    cert, key = sys.argv[1], sys.argv[2]
    server = Server(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"listening on {server.server_address[1]}", flush=True)
    print(json.dumps({"wheel": WHEEL, "wheel_sha256": WHEEL_SHA}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
