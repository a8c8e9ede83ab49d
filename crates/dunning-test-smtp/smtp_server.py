#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) on 127.0.0.1: the SMTP peer of every Dunning test.

    smtp_server.py --dir DIR --cert CERT --key KEY [--mode MODE] [--user U --password P]
                   [--no-pipelining]

Binds a free port and prints "READY <port>" on stdout; runs until stdin closes (the
test process holding the pipe exits or drops it). Every accepted message is stored
as DIR/<n>.eml plus DIR/<n>.json (the message as Python's email parser decodes it,
an independent check of what lettre wrote). DIR/connections holds the number of TCP
connections accepted so far, DIR/commands.json how many NOOP, RSET, EHLO and QUIT
commands arrived, and in how many transactions the RCPT TO command had already
arrived with MAIL FROM ("PIPELINED": the client used PIPELINING).

PIPELINING (RFC 2920) is offered in the EHLO reply, as by Postfix, unless
--no-pipelining is given. aiosmtpd reads one command line at a time, so pipelined
commands are answered in order like any other.

Lines on stdin are commands:
  close <seq>      close every open connection, as a server dropping idle clients
  close421 <seq>   the same, after a "421 4.4.2 … timeout" reply (as Postfix does)
After closing, DIR/closed holds "<seq> <connections closed>".

Modes:
  starttls     STARTTLS offered, AUTH only after it (the default)
  no-starttls  no STARTTLS offered
  implicit     TLS from the first byte (port-465 style)
  plain        no TLS at all, no AUTH
  rcpt-550     RCPT TO for an address starting with "nobody" refused with 550 5.1.1
  rcpt-450     every RCPT TO refused with 450 4.2.0
  rcpt-550-lenient  like rcpt-550, but DATA is accepted (354) all the same, as a
               careless server may do: a pipelining client must not send the message
  drop-data    the connection is cut after the message data arrives, before the reply
  drop-data-2  the same for the second message only (the first is accepted)
  scripted     no TLS; AUTH offered all the same and any login accepted (each one is
               recorded in DIR/auth.json, so a test can prove the password went over
               the wire); the answer depends on the recipient, so that one server
               refuses some messages and accepts the rest:
                 rcpt421@…   421 4.3.2, then the connection is closed
                 rcpt450@…   450 4.2.0 (mailbox busy)
                 rcpt550@…   550 5.1.1 (no such user)
                 dropdata@…  the connection is cut after the message data

    smtp_server.py --parse FILE   prints FILE (an .eml) decoded as JSON and exits.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword


def describe(raw: bytes) -> dict:
    """The message as a mail client would see it."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {
        "subject": str(msg["subject"]),
        "from": str(msg["from"]),
        "to": str(msg["to"]),
        "message_id": str(msg["message-id"]),
        "date": str(msg["date"]),
        "content_type": msg.get_content_type(),
        "header_names": [k for k, _ in msg.items()],
        "defects": [repr(d) for d in msg.defects],
        "raw_header_lines": [],
        "text": None,
        "html": None,
    }
    head = raw.split(b"\r\n\r\n", 1)[0]
    out["raw_header_lines"] = [l.decode("ascii", "replace") for l in head.split(b"\r\n")]
    for part in msg.walk():
        out["defects"] += [repr(d) for d in part.defects]
        ctype = part.get_content_type()
        if ctype in ("text/plain", "text/html") and not part.is_multipart():
            content = part.get_content().replace("\r\n", "\n")
            out["text" if ctype == "text/plain" else "html"] = content
    return out


def write_atomic(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


class Handler:
    def __init__(self, directory, mode, pipelining):
        self.directory = directory
        self.mode = mode
        self.pipelining = pipelining
        self.count = 0
        self.data_commands = 0
        self.commands = {"NOOP": 0, "RSET": 0, "QUIT": 0, "EHLO": 0, "PIPELINED": 0}

    def counted(self, command):
        self.commands[command] += 1
        write_atomic(os.path.join(self.directory, "commands.json"), json.dumps(self.commands))
        return MISSING  # the default reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.counted("EHLO")
        if self.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # Pipelined: the RCPT TO line came in the same write and waits unread.
        waiting = bytes(getattr(server._reader, "_buffer", b""))
        if b"RCPT TO" in waiting.upper():
            self.counted("PIPELINED")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_NOOP(self, server, session, envelope, arg):
        return self.counted("NOOP")

    async def handle_RSET(self, server, session, envelope):
        return self.counted("RSET")

    async def handle_QUIT(self, server, session, envelope):
        return self.counted("QUIT")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "scripted":
            if address.startswith("rcpt421@"):
                server.transport.write(b"421 4.3.2 Service shutting down\r\n")
                server.transport.close()
                return "421 4.3.2 Service shutting down"
            if address.startswith("rcpt450@"):
                return "450 4.2.0 <%s>: Mailbox busy, try again later" % address
            if address.startswith("rcpt550@"):
                return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if self.mode in ("rcpt-550", "rcpt-550-lenient") and address.startswith("nobody"):
            if self.mode == "rcpt-550-lenient":
                envelope.rcpt_tos.append(address)  # DATA will be accepted
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if self.mode == "rcpt-450":
            return "450 4.2.0 <%s>: Recipient address rejected: Greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.data_commands += 1
        dropdata = self.mode == "scripted" and any(r.startswith("dropdata@") for r in envelope.rcpt_tos)
        if dropdata or self.mode == "drop-data" or (self.mode == "drop-data-2" and self.data_commands == 2):
            server.transport.abort()
            return "421 4.3.0 never seen"
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        info = describe(envelope.original_content or envelope.content)
        info["mail_from"] = envelope.mail_from
        info["rcpt_tos"] = envelope.rcpt_tos
        auth = getattr(session, "auth_data", None)
        info["login"] = auth.login.decode() if isinstance(auth, LoginPassword) else None
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w") as f:
            json.dump(info, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 2.0.0 Ok: queued as FAKE%d" % self.count


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--mode", default="starttls")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--parse")
    p.add_argument("--no-pipelining", action="store_true")
    a = p.parse_args()

    if a.parse:
        with open(a.parse, "rb") as f:
            print(json.dumps(describe(f.read())))
        return

    modes = (
        "starttls", "no-starttls", "implicit", "plain", "rcpt-550", "rcpt-550-lenient", "rcpt-450", "drop-data",
        "drop-data-2", "scripted",
    )
    if a.mode not in modes:
        sys.exit("unknown --mode %r; use one of %s" % (a.mode, ", ".join(modes)))

    context = None
    if a.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(a.cert, a.key)

    handler = Handler(a.dir, a.mode, not a.no_pipelining)
    # STARTTLS calls connection_made again for the same TCP connection: count peers.
    peers = set()
    # The open connections, to close them on request.
    live = set()

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        if a.mode == "scripted":
            if isinstance(auth_data, LoginPassword):
                logins.append([auth_data.login.decode(), auth_data.password.decode()])
                write_atomic(os.path.join(a.dir, "auth.json"), json.dumps(logins))
            return AuthResult(success=True, handled=False, auth_data=auth_data)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    class CountingSMTP(SMTP):
        def connection_made(self, transport):
            peers.add(transport.get_extra_info("peername"))
            live.add(self)
            write_atomic(os.path.join(a.dir, "connections"), str(len(peers)))
            super().connection_made(transport)

        def connection_lost(self, error):
            live.discard(self)
            super().connection_lost(error)

    def close_all(with_421):
        closed = 0
        for server in list(live):
            if server.transport is None:
                continue
            if with_421:
                server.transport.write(b"421 4.4.2 dunning-test-smtp Error: timeout exceeded\r\n")
            server.transport.close()
            closed += 1
        return closed

    starttls = a.mode not in ("no-starttls", "implicit", "plain", "scripted")
    use_auth = a.user is not None and a.mode != "plain"

    def factory():
        return CountingSMTP(
            handler,
            hostname="dunning-test-smtp",
            tls_context=context if starttls else None,
            require_starttls=False,
            authenticator=authenticator if use_auth else None,
            auth_required=use_auth and a.mode != "scripted",
            # AUTH only over TLS, like every real submission server; implicit TLS is
            # TLS. The scripted mode has no TLS and takes a login all the same.
            auth_require_tls=a.mode not in ("implicit", "scripted"),
            enable_SMTPUTF8=True,
            decode_data=False,
            timeout=30,
        )

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory,
            "127.0.0.1",
            0,
            ssl=context if a.mode == "implicit" else None,
        )
        port = server.sockets[0].getsockname()[1]
        print("READY %d" % port, flush=True)
        # Run until the test closes our stdin (or exits); obey its commands.
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            words = line.split()
            if len(words) == 2 and words[0] in ("close", "close421"):
                closed = close_all(words[0] == "close421")
                write_atomic(os.path.join(a.dir, "closed"), "%s %d" % (words[1], closed))
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
