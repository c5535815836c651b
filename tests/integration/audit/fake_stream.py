#!/usr/bin/env python3
"""fake_stream.py CERT KEY BODY_FILE - a gateway that lies, for one request.

Serves HTTPS on 127.0.0.1 (a free port, printed on stdout as the first line)
with the gateway's own server certificate, so a client that pins the
gateway CA connects to it. The first request gets 200 text/event-stream
with BODY_FILE's bytes, then the connection closes and the server exits.
`ehrctl patient watch` must refuse an event whose fields do not match its
entry bytes (docs/AUDIT.md section 10)."""
import http.server
import ssl
import sys

cert, key, body_file = sys.argv[1:4]
with open(body_file, "rb") as f:
    body = f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.timeout = 30
srv.handle_request()
