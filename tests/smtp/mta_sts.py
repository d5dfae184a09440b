"""An HTTPS server for MTA-STS policies in the tests (tests/src/smtp.rs, MtaStsServer).

Usage: mta_sts.py DIR CERT KEY. Listens on a free port of 127.0.0.1 and prints
"listening PORT". GET /.well-known/mta-sts.txt with Host mta-sts.DOMAIN[:PORT] answers the
file DIR/mta-sts.DOMAIN as text/plain; anything else is 404.
"""
import http.server
import os
import ssl
import sys

root, cert, key = sys.argv[1:4]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        path = os.path.join(root, host)
        if self.path != "/.well-known/mta-sts.txt" or "/" in host or not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
