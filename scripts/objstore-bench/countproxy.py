"""Counting HTTP/1.1 reverse proxy (TCP level, request-framing aware) for 127.0.0.1 only.

usage: countproxy.py LISTEN_PORT TARGET_PORT LOGFILE
Each request becomes one JSON line: method, path, range, request body bytes, response bytes, status.
"""

import asyncio
import json
import sys
import time

LISTEN, TARGET, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
logf = open(LOG, "a", buffering=1)
conn_ids = iter(range(1, 10**9))
req_ids = iter(range(1, 10**12))


class Conn:
    def __init__(self):
        self.id = next(conn_ids)
        self.cur = None
        self.status_pending = False

    def flush(self, keep=False):
        if self.cur is not None and self.cur.get("_dirty", True):
            rec = {k: v for k, v in self.cur.items() if k != "_dirty"}
            rec["ev"] = "resp"
            logf.write(json.dumps(rec) + "\n")
            self.cur["_dirty"] = False
        if not keep:
            self.cur = None


async def pipe_down(reader, writer, conn):
    try:
        while True:
            try:
                data = await asyncio.wait_for(reader.read(65536), 0.1)
            except TimeoutError:
                conn.flush(keep=True)  # idle: record progress so far
                continue
            if not data:
                break
            if conn.cur is not None:
                if conn.status_pending and data.startswith(b"HTTP/"):
                    view = data
                    while view.startswith(b"HTTP/1.1 100"):
                        end = view.find(b"\r\n\r\n")
                        view = view[end + 4 :] if end >= 0 else b""
                    if view.startswith(b"HTTP/"):
                        conn.cur["status"] = int(view[9:12])
                        conn.status_pending = False
                conn.cur["resp"] += len(data)
                conn.cur["_dirty"] = True
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def handle(creader, cwriter):
    conn = Conn()
    try:
        sreader, swriter = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        cwriter.close()
        return
    down = asyncio.create_task(pipe_down(sreader, cwriter, conn))
    try:
        while True:
            head = await creader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            conn.flush()
            conn.cur = {
                "rid": next(req_ids),
                "t": round(time.time(), 4),
                "c": conn.id,
                "m": method,
                "p": path[:300],
                "range": headers.get("range"),
                "req": 0,
                "resp": 0,
                "status": None,
            }
            conn.status_pending = True
            logf.write(json.dumps({k: v for k, v in conn.cur.items()} | {"ev": "req"}) + "\n")
            swriter.write(head)
            if "content-length" in headers:
                n = int(headers["content-length"])
                conn.cur["req"] = n
                while n:
                    chunk = await creader.read(min(n, 1 << 20))
                    if not chunk:
                        raise ConnectionError
                    swriter.write(chunk)
                    n -= len(chunk)
                    await swriter.drain()
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size_line = await creader.readuntil(b"\r\n")
                    swriter.write(size_line)
                    size = int(size_line.split(b";")[0].strip(), 16)
                    body = await creader.readexactly(size + 2)
                    conn.cur["req"] += size
                    swriter.write(body)
                    await swriter.drain()
                    if size == 0:
                        # trailers (rare) end with an empty line; body already has the CRLF
                        break
            await swriter.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        try:
            swriter.close()
        except OSError:
            pass
        await down
        conn.flush()
        try:
            cwriter.close()
        except OSError:
            pass


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN, limit=1 << 20)
    async with server:
        await server.serve_forever()


asyncio.run(main())
