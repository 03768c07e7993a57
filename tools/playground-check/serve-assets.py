"""Serves a local copy of GraphiQL's assets with CORS (the page loads them `crossorigin`)."""
import functools
import http.server
import sys
class H(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()
http.server.ThreadingHTTPServer(("127.0.0.1", 18300), functools.partial(H, directory=sys.argv[1] if len(sys.argv) > 1 else "cdn")).serve_forever()
