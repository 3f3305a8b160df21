"""Scripted SSH client for Padlock's end-to-end PAM tests, built on paramiko.

Connects to 127.0.0.1:PORT as USER, optionally offers a private key first (for
`AuthenticationMethods publickey,keyboard-interactive`), then authenticates with
keyboard-interactive, answering each prompt by the first rule (in --rules order) whose `match`
occurs in the prompt, case-insensitively. Rules are a JSON list of objects:

  {"match": "Password", "answer": "s3cret"}        the same answer every time
  {"match": "code", "answers": ["123456", "0"]}    the next answer from the list
  {"match": "code", "ask": true}                   print {"ask": PROMPT} on stdout, answer with
                                                   the next line read from stdin
  {"match": "code", "command": "cat /tmp/code"}    the trimmed stdout of a shell command

On success it runs --command (default `echo ok`). The last stdout line is the result:
{"authenticated": bool, "prompts": [...], "instructions": [...], "error": str|null,
 "output": str|null, "exit_status": int|null}

A refused login is a result, not a failure: the exit status is non-zero (2) only when the harness
itself went wrong (no connection, a prompt no rule answers, a list of answers used up, stdin
closed).
"""

import argparse
import json
import socket
import subprocess
import sys

import paramiko


class HarnessError(Exception):
    pass


class Answerer:
    def __init__(self, rules):
        self.rules = rules
        self.prompts = []
        self.instructions = []
        self.error = None

    def answer(self, prompt):
        for rule in self.rules:
            if rule["match"].lower() not in prompt.lower():
                continue
            if "answer" in rule:
                return rule["answer"]
            if "answers" in rule:
                if not rule["answers"]:
                    raise HarnessError(f"no answer left for prompt {prompt!r}")
                return rule["answers"].pop(0)
            if rule.get("ask"):
                print(json.dumps({"ask": prompt}), flush=True)
                line = sys.stdin.readline()
                if not line:
                    raise HarnessError(f"stdin closed while asked {prompt!r}")
                return line.rstrip("\n")
            if "command" in rule:
                done = subprocess.run(
                    rule["command"], shell=True, capture_output=True, text=True, check=True
                )
                return done.stdout.strip()
            raise HarnessError(f"rule {rule!r} says neither answer, answers, ask nor command")
        raise HarnessError(f"no rule answers prompt {prompt!r}")

    def __call__(self, title, instructions, prompt_list):
        # Runs on paramiko's transport thread: an exception here ends the transport, so remember
        # harness errors to tell them apart from a refused login afterwards.
        if instructions:
            self.instructions.append(instructions)
        answers = []
        for prompt, _echo in prompt_list:
            self.prompts.append(prompt)
            try:
                answers.append(self.answer(prompt))
            except Exception as e:  # noqa: BLE001 - reported as a harness error below
                self.error = self.error or HarnessError(str(e))
                raise
        return answers


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--rules", required=True, help="JSON list of answer rules")
    parser.add_argument("--key", help="private key offered before keyboard-interactive")
    parser.add_argument("--command", default="echo ok")
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args()

    answerer = Answerer(json.loads(args.rules))
    result = {
        "authenticated": False,
        "prompts": answerer.prompts,
        "instructions": answerer.instructions,
        "error": None,
        "output": None,
        "exit_status": None,
    }

    def finish(code):
        print(json.dumps(result), flush=True)
        sys.exit(code)

    try:
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=args.timeout)
        transport = paramiko.Transport(sock)
        transport.start_client(timeout=args.timeout)
    except (OSError, paramiko.SSHException) as e:
        result["error"] = f"cannot connect: {e}"
        finish(2)
    # Generous: an "ask" prompt waits while the test fetches a code (an email, say).
    transport.auth_timeout = args.timeout
    try:
        if args.key:
            key = paramiko.PKey.from_path(args.key)
            transport.auth_publickey(args.user, key)
        transport.auth_interactive(args.user, answerer)
    except paramiko.SSHException as e:
        result["error"] = str(e)
    if answerer.error is not None:
        result["error"] = f"harness: {answerer.error}"
        transport.close()
        finish(2)
    result["authenticated"] = transport.is_authenticated()
    if result["authenticated"]:
        try:
            channel = transport.open_session(timeout=args.timeout)
            channel.settimeout(args.timeout)
            channel.exec_command(args.command)
            result["output"] = channel.makefile("r").read().decode(errors="replace")
            result["exit_status"] = channel.recv_exit_status()
        except (OSError, paramiko.SSHException) as e:
            # Authenticated but no session (the account or session stack said no): an outcome.
            result["error"] = f"session: {e}"
    transport.close()
    finish(0)


if __name__ == "__main__":
    main()
