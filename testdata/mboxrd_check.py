#!/usr/bin/env python3
"""Independent oracle for mailvault archives.

Reads an mboxrd stream (the output of `zstd -dc` over a folder's segments)
with Python's standard `mailbox` module and checks it against the messages
the manifest says are stored there, in stream order.

usage: mboxrd_check.py STREAM.mbox EXPECTED.json [STREAM.mbox EXPECTED.json ...]
EXPECTED.json is a list of {"sha256": HEX, "size": N}. Every pair is
checked; the exit status is 1 if any fails.
"""
import hashlib
import json
import mailbox
import re
import sys

# mboxrd unquoting: a line of one or more '>' followed by "From " loses one '>'.
UNQUOTE = re.compile(rb"(?m)^>(>*From )")


def check(stream, expected_path):
    """Returns an error message, or None when the stream matches."""
    with open(expected_path) as f:
        expected = json.load(f)
    box = mailbox.mbox(stream, create=False)
    keys = box.keys()
    if len(keys) != len(expected):
        return f"{stream}: python mailbox found {len(keys)} messages, manifest says {len(expected)}"
    for i, key in enumerate(keys):
        raw = box.get_bytes(key)  # without the From_ line
        msg = UNQUOTE.sub(rb"\1", raw)
        want = expected[i]
        body, rest = msg[: want["size"]], msg[want["size"] :]
        # An mbox reader cannot know a message lacked a final newline: the LF
        # mailvault added to end its last line is all that may remain.
        if rest not in (b"", b"\n"):
            return f"{stream}: message {i}: {len(rest)} unexpected bytes after the recorded size"
        if hashlib.sha256(body).hexdigest() != want["sha256"]:
            return f"{stream}: message {i}: SHA-256 differs from the manifest"
    print(f"{stream}: {len(keys)} messages match")
    return None


def main():
    args = sys.argv[1:]
    if not args or len(args) % 2:
        sys.exit("usage: mboxrd_check.py STREAM.mbox EXPECTED.json [STREAM.mbox EXPECTED.json ...]")
    failed = False
    for i in range(0, len(args), 2):
        err = check(args[i], args[i + 1])
        if err:
            print(err, file=sys.stderr)
            failed = True
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
