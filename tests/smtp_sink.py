"""A real SMTP server for tests/dispatch.rs: aiosmtpd with STARTTLS and AUTH, which writes
each message it accepts to OUT (msg-N.eml, msg-N.json with the envelope and whether TLS and
AUTH were used, msg-N.att-NAME with each attachment decoded).

usage: smtp_sink.py PORT OUT CERT KEY USER PASSWORD TEMPFAIL

TEMPFAIL: how many DATA commands to answer with 451 (a temporary failure) before accepting.
"""

import email
import email.policy
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    port, out, cert, key, user, password, tempfail = sys.argv[1:8]
    tempfail = int(tempfail)
    os.makedirs(out, exist_ok=True)
    state = {"n": 0, "refused": 0}
    lock = threading.Lock()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with lock:
                if state["refused"] < tempfail:
                    state["refused"] += 1
                    return "451 4.3.0 try again later (test server)"
                state["n"] += 1
                n = state["n"]
            base = os.path.join(out, "msg-%d" % n)
            with open(base + ".eml", "wb") as f:
                f.write(envelope.content)
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            attachments = []
            for part in msg.iter_attachments():
                name = part.get_filename()
                data = part.get_payload(decode=True)
                with open(base + ".att-" + name, "wb") as f:
                    f.write(data)
                attachments.append(name)
            body = msg.get_body(preferencelist=("plain",))
            meta = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "tls": session.ssl is not None,
                "authenticated": bool(session.authenticated),
                "subject": str(msg["subject"]),
                "text": body.get_content() if body is not None else "",
                "attachments": attachments,
            }
            with open(base + ".json.tmp", "w") as f:
                json.dump(meta, f)
            os.rename(base + ".json.tmp", base + ".json")
            return "250 2.0.0 accepted as msg-%d" % n

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=int(port),
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
