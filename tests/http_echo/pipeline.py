#!/usr/bin/env python3
"""Python's http.client against examples/http_echo (run by tests/http_echo.rs).

usage: pipeline.py PORT

1. Pipelining: several requests (GET, POST with and without Content-Type, chunked POST, HEAD,
   Expect: 100-continue, and a last one with Connection: close) written in one sendall() on one
   socket, then read back in order with http.client.HTTPResponse. Each HTTPResponse calls
   sock.makefile("rb") and closes that file when its body is done, so the socket handed to it is a
   wrapper whose makefile() returns the one shared buffered reader, with a close() that does
   nothing: bytes read ahead for the next response stay in the buffer.
2. Malformed requests, each on a fresh socket: the status code, `Connection: close`, a text/plain
   body, then EOF.

Prints one line per check and `ALL OK` at the end; exits 1 with a message on stderr at the first
failure. Every socket has a timeout, so the script cannot hang.
"""

import http.client
import socket
import sys

TIMEOUT = 10.0


class SharedReader:
    """The socket's one buffered reader, shared by every HTTPResponse; close() is a no-op."""

    def __init__(self, fp):
        self._fp = fp

    def __getattr__(self, name):
        return getattr(self._fp, name)

    def close(self):
        pass


class PipelinedSocket:
    """What HTTPResponse needs of a socket: makefile(), returning the shared reader."""

    def __init__(self, sock):
        self.sock = sock
        self.reader = SharedReader(sock.makefile("rb"))

    def makefile(self, mode="rb", *args, **kwargs):
        if "r" not in mode:
            raise ValueError("read-only wrapper")
        return self.reader


def fail(msg):
    sys.stderr.write("FAIL: " + msg + "\n")
    sys.exit(1)


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)


def request(method, body=None, headers=(), chunks=None, version="HTTP/1.1"):
    lines = ["%s / %s" % (method, version), "Host: python-test"]
    lines += list(headers)
    payload = b""
    if chunks is not None:
        lines.append("Transfer-Encoding: chunked")
        for c in chunks:
            payload += b"%x\r\n" % len(c) + c + b"\r\n"
        payload += b"0\r\n\r\n"
    elif body is not None:
        lines.append("Content-Length: %d" % len(body))
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + payload


def check_common(resp, what):
    if resp.version != 11:
        fail("%s: version %r, want HTTP/1.1" % (what, resp.version))
    if resp.getheader("Date") is None:
        fail("%s: no Date header" % what)
    if resp.getheader("Content-Length") is None:
        fail("%s: no Content-Length header" % what)


def pipelined(port):
    # (method, request bytes, expected body, expected content type, expected Content-Length)
    cases = []
    hello = b"Hello, World!"
    cases.append(("GET", request("GET"), hello, "text/plain", 13))
    for i in range(3):
        body = ("python pipelined body %d " % i).encode() * (i * 7 + 1)
        cases.append(
            (
                "POST",
                request("POST", body, ["Content-Type: application/x-py-%d" % i]),
                body,
                "application/x-py-%d" % i,
                len(body),
            )
        )
    body = bytes(range(256)) * 3
    cases.append(("POST", request("POST", body), body, "application/octet-stream", len(body)))
    cases.append(("HEAD", request("HEAD"), b"", "text/plain", 13))
    chunks = [b"chunk-one;", b"x" * 1000, b"last"]
    body = b"".join(chunks)
    cases.append(
        (
            "POST",
            request("POST", chunks=chunks, headers=["Content-Type: text/x-chunked"]),
            body,
            "text/x-chunked",
            len(body),
        )
    )
    body = b"expect body " * 20
    cases.append(
        (
            "POST",
            request("POST", body, ["Expect: 100-continue", "Content-Type: text/x-expect"]),
            body,
            "text/x-expect",
            len(body),
        )
    )
    cases.append(("GET", request("GET", headers=["Connection: close"]), hello, "text/plain", 13))

    sock = connect(port)
    try:
        sock.sendall(b"".join(c[1] for c in cases))
        ps = PipelinedSocket(sock)
        for i, (method, _req, body, ctype, clen) in enumerate(cases):
            what = "pipelined #%d (%s)" % (i, method)
            resp = http.client.HTTPResponse(ps, method=method)
            resp.begin()  # skips the interim 100 Continue of the Expect request
            got = resp.read()
            if resp.status != 200 or resp.reason != "OK":
                fail("%s: status %d %r" % (what, resp.status, resp.reason))
            check_common(resp, what)
            if got != body:
                fail("%s: body %r..., want %r..." % (what, got[:60], body[:60]))
            if resp.getheader("Content-Type") != ctype:
                fail("%s: Content-Type %r, want %r" % (what, resp.getheader("Content-Type"), ctype))
            if int(resp.getheader("Content-Length")) != clen:
                fail("%s: Content-Length %r, want %d" % (what, resp.getheader("Content-Length"), clen))
        last = resp.getheader("Connection", "")
        if "close" not in last.lower():
            fail("last pipelined response: Connection %r, want close" % last)
        rest = ps.reader.read()
        if rest != b"":
            fail("bytes after the last pipelined response: %r" % rest[:100])
        print("pipelined %d requests ok" % len(cases))
    finally:
        sock.close()


def malformed(port):
    cases = [
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("garbage", b"NOT-HTTP\r\n\r\n", 400),
        ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
        ("bad Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (
            "Content-Length and Transfer-Encoding",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        (
            "bad chunk size",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            400,
        ),
        ("too many headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(80)) + b"\r\n", 431),
        ("huge head", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n", 431),
        ("body too large", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (
            "gzip transfer coding",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ]
    for what, req, status in cases:
        sock = connect(port)
        try:
            sock.sendall(req)
            ps = PipelinedSocket(sock)
            resp = http.client.HTTPResponse(ps, method="GET")
            try:
                resp.begin()
            except (http.client.HTTPException, OSError) as e:
                fail("%s: no valid response: %r" % (what, e))
            body = resp.read()
            if resp.status != status:
                fail("%s: status %d %r, want %d (body %r)" % (what, resp.status, resp.reason, status, body))
            check_common(resp, what)
            if "close" not in resp.getheader("Connection", "").lower():
                fail("%s: Connection %r, want close" % (what, resp.getheader("Connection")))
            ctype = resp.getheader("Content-Type", "")
            if not ctype.startswith("text/plain"):
                fail("%s: Content-Type %r, want text/plain" % (what, ctype))
            try:
                rest = ps.reader.read()
            except ConnectionResetError:
                rest = b""
            if rest != b"":
                fail("%s: bytes after the error response: %r" % (what, rest[:100]))
            print("malformed %r -> %d ok" % (what, status))
        finally:
            sock.close()


def main():
    if len(sys.argv) != 2:
        fail("usage: pipeline.py PORT")
    port = int(sys.argv[1])
    pipelined(port)
    malformed(port)
    print("ALL OK")


if __name__ == "__main__":
    main()
