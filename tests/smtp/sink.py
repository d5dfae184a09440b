#!/usr/bin/python3
"""A controllable SMTP server for Sealpost's tests, on Debian's python3-aiosmtpd.

Started by the test kit (tests/src/smtp.rs) as `/usr/bin/python3 sink.py --out DIR ...`; it
listens on 127.0.0.1 (port 0: a free one), prints `listening PORT` on its first stdout line,
and serves until it is killed. Every mail it takes is written to DIR as `mail-N.eml` (the
bytes as received) and then `mail-N.json` (envelope, TLS and login of the session, and the
mail parsed by Python's email package: headers decoded, text and HTML parts); every session
event is appended to DIR/events.log.

Options make it misbehave as relays do: answer the first N mails' data with 451, refuse every
recipient with a given answer, require STARTTLS (with a certificate and key), require AUTH
with given credentials. `--parse FILE` only prints FILE parsed as that JSON (for Maildir files).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def parsed(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    out = {"headers": [[k, str(v)] for k, v in msg.items()], "text": None, "html": None}
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "text/plain" and out["text"] is None:
            out["text"] = part.get_content()
        elif kind == "text/html" and out["html"] is None:
            out["html"] = part.get_content()
    return out


class Sink:
    def __init__(self, args):
        self.args = args
        self.datas = 0
        self.stored = 0

    def event(self, line):
        with open(os.path.join(self.args.out, "events.log"), "a") as f:
            f.write(line + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.args.reject_rcpt:
            self.event("rcpt refused " + address)
            return self.args.reject_rcpt
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.datas += 1
        if self.datas <= self.args.tempfail_data:
            self.event("data refused %d" % self.datas)
            return "451 4.3.0 Try again later: the relay is busy"
        self.stored += 1
        n = self.stored
        raw = envelope.original_content or envelope.content
        base = os.path.join(self.args.out, "mail-%d" % n)
        with open(base + ".tmp", "wb") as f:
            f.write(raw)
        os.rename(base + ".tmp", base + ".eml")
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(getattr(session, "authenticated", False)),
        }
        meta.update(parsed(raw))
        with open(base + ".jtmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".jtmp", base + ".json")
        self.event("stored %d" % n)
        return "250 2.0.0 Ok: queued as SINK%d" % n


class LoggingSMTP(SMTP):
    def connection_made(self, transport):
        # Called again with the TLS transport after STARTTLS: one event per TCP connection.
        if getattr(self, "transport", None) is None:
            self.event_handler.event("connect")
        super().connection_made(transport)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out")
    p.add_argument("--tempfail-data", type=int, default=0)
    p.add_argument("--reject-rcpt")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--auth", help="USER:PASSWORD the relay requires")
    p.add_argument("--parse", help="print this mail file parsed, and exit")
    args = p.parse_args()
    if args.parse:
        with open(args.parse, "rb") as f:
            print(json.dumps(parsed(f.read())))
        return
    if not args.out:
        p.error("--out is required")
    sink = Sink(args)

    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        user, password = args.auth.split(":", 1)
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        sink.event("auth %s %s" % (mechanism, "ok" if ok else "refused"))
        return AuthResult(success=ok, handled=False)

    def factory():
        return LoggingSMTP(
            sink,
            hostname="sink.test",
            tls_context=tls,
            require_starttls=tls is not None,
            auth_required=bool(args.auth),
            auth_require_tls=True,
            authenticator=authenticator if args.auth else None,
        )

    async def serve():
        server = await asyncio.get_running_loop().create_server(factory, args.host, args.port)
        port = server.sockets[0].getsockname()[1]
        print("listening %d" % port, flush=True)
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
