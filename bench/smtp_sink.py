#!/usr/bin/env python3
"""A loopback SMTP sink for scripts/bench (aiosmtpd, as in the channel tests).

    smtp_sink.py [--cert CERT --key KEY] [--user U --password P]

Like crates/dunning-channels/tests/support/smtp_server.py, but it keeps nothing:
each accepted message only increments a counter, so that the server costs as little
CPU as a Python SMTP server can (the benchmark measures the client, not this).
With --cert it offers STARTTLS (AUTH only after it, when --user is given).

Prints "READY <port>", serves until stdin closes, then prints
"RECEIVED <messages> CONNECTIONS <tcp connections>" and exits.
"""

import argparse
import asyncio
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self):
        self.messages = 0
        self.connections = 0

    async def handle_DATA(self, server, session, envelope):
        self.messages += 1
        return "250 2.0.0 Ok: queued as BENCH%d" % self.messages


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    a = p.parse_args()

    context = None
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)
    sink = Sink()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    class Counting(SMTP):
        def connection_made(self, transport):
            # STARTTLS calls this again for the same TCP connection.
            if transport.get_extra_info("sslcontext") is None:
                sink.connections += 1
            super().connection_made(transport)

    use_auth = a.user is not None

    def factory():
        return Counting(
            sink,
            hostname="dunning-bench-smtp",
            tls_context=context,
            require_starttls=False,
            authenticator=authenticator if use_auth else None,
            auth_required=use_auth,
            auth_require_tls=True,
            decode_data=False,
            timeout=60,
        )

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0, backlog=512)
        print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()
        print("RECEIVED %d CONNECTIONS %d" % (sink.messages, sink.connections), flush=True)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
