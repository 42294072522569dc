"""A minimal explicit HTTPS proxy for the load client's tests: answers
`CONNECT host:port` with 200 and relays bytes, after checking
`Proxy-Authorization` against the expected value (407 otherwise). Every
host under example.test is connected to at 127.0.0.1. Prints
`listening on PORT`, then one `CONNECT authority` line per tunnel.

usage: python3 connect_proxy.py 'Basic dXNlcjpwYXNz'
"""

import asyncio
import sys

EXPECTED = sys.argv[1]


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def handle(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, authority, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if method != "CONNECT":
        writer.write(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
        writer.close()
        return
    if headers.get("proxy-authorization") != EXPECTED:
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
        writer.close()
        return
    host, port = authority.rsplit(":", 1)
    if host.endswith(".example.test"):
        host = "127.0.0.1"
    up_reader, up_writer = await asyncio.open_connection(host, int(port))
    print(f"CONNECT {authority}", flush=True)
    writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
    await writer.drain()
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
