#!/usr/bin/env python3
"""A receiver of Dunning's hook POSTs (url actions), with the standard library only.

Checks X-Dunning-Signature (sha256=HMAC-SHA256 of the raw body with
DUNNING_HOOK_SECRET) in constant time before reading the JSON, answers 2xx when
done. Dunning retries 5xx and unreachable receivers (dunning-worker --tries) and
fails a 4xx at once, so answer 401 to a bad signature and 5xx when your side is
temporarily unable. Each event arrives at least once per invoice and event, and
normally exactly once: make the handler idempotent on notification_id anyway.

    DUNNING_HOOK_SECRET=... python3 webhook-receiver.py 127.0.0.1 9100
"""
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["DUNNING_HOOK_SECRET"].encode()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        if length > 1_000_000:
            return self.answer(413, "too large")
        body = self.rfile.read(length)
        want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, self.headers.get("X-Dunning-Signature", "")):
            return self.answer(401, "bad signature")
        event = json.loads(body)
        invoice = event.get("invoice") or {}
        # Do the work here: mark the customer in billing, open a ticket, ...
        print(f"{event['event']} {event['action']} customer={event['customer']['id']} "
              f"invoice={invoice.get('number', '-')} id={event['notification_id']}", flush=True)
        self.answer(200, "ok")

    def answer(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    HTTPServer((host, port), Handler).serve_forever()
