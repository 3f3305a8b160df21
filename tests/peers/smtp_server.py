"""SMTP server for Padlock's end-to-end tests, built on aiosmtpd.

Modes: plain SMTP, STARTTLS, or implicit TLS ("smtps"); with --user/--password it requires AUTH
(PLAIN or LOGIN) and refuses any other credentials. Prints "ready" once it accepts connections,
then one JSON object per received message:
{"to": [...], "from": "...", "subject": "...", "body": "...", "tls": bool, "user": str|null}
"""

import argparse
import email
import email.policy
import json
import logging
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Printer:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        record = {
            "to": envelope.rcpt_tos,
            "from": envelope.mail_from,
            "subject": str(message["subject"]),
            "body": message.get_content(),
            "tls": tls,
            "user": session.auth_data,
        }
        print(json.dumps(record), flush=True)
        return "250 Message accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        # handled=False: aiosmtpd answers 535 itself on a failure.
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)

    return check


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=["plain", "starttls", "smtps"], default="plain")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args()
    # The failure tests make TLS handshakes fail on purpose; aiosmtpd would log each with a
    # traceback. What the tests check is what Padlock answers, so keep the log quiet.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)

    options = {}
    if args.mode != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            # The whole connection is TLS: AUTH needs no STARTTLS first.
            options.update(ssl_context=context, auth_require_tls=False)
    if args.user:
        options.update(
            authenticator=authenticator(args.user, args.password), auth_required=True
        )
    controller = Controller(Printer(), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
