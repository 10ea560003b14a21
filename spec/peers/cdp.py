#!/usr/bin/env python3
"""spec/peers/cdp.py: drives a page of a headless Chromium through the
Chrome DevTools Protocol, for the specs of examples/ws_chat.lua (a
browser's WebSocket against loom's server, written apart from loom).

  cdp.py DEVTOOLS_PORT URL_PREFIX

It finds the page whose URL starts with URL_PREFIX in
http://127.0.0.1:DEVTOOLS_PORT/json (waiting for it up to 10 s),
connects to its webSocketDebuggerUrl and prints {"ready": true}.  Then
it reads commands, one JSON object a line on stdin, and answers each
with one JSON line on stdout, {"error": "..."} when it failed:

  {"eval": EXPR}                   {"value": V}: Runtime.evaluate of EXPR
                                   in the page (promises awaited)
  {"wait": EXPR, "timeout": S}     {"value": V}: EXPR again every 20 ms
                                   until it is truthy (at most S s, 10)
  {"keys": TEXT}                   {}: TEXT typed where the focus is
                                   (Input.insertText), then Enter
  {"screenshot": PATH}             {"bytes": N}: Page.captureScreenshot,
                                   a PNG written to PATH

It ends at the end of its input.
"""
import asyncio
import base64
import itertools
import json
import sys
import time
import urllib.request

import websockets


async def find_page(port, prefix, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(
                    "http://127.0.0.1:%d/json" % port, timeout=2) as r:
                for t in json.load(r):
                    if t.get("type") == "page" and \
                            t.get("url", "").startswith(prefix):
                        return t["webSocketDebuggerUrl"]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("no page at %s in the browser after %g s"
                               % (prefix, timeout))
        await asyncio.sleep(0.05)


class Page:
    def __init__(self, ws):
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method, **params):
        n = next(self.ids)
        await self.ws.send(json.dumps(
            {"id": n, "method": method, "params": params}))
        while True:  # events (none enabled) and answers to others: skipped
            msg = json.loads(await self.ws.recv())
            if msg.get("id") == n:
                if "error" in msg:
                    raise RuntimeError("%s: %s" % (method, msg["error"]))
                return msg["result"]

    async def evaluate(self, expr):
        r = await self.call("Runtime.evaluate", expression=expr,
                            returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError("%s: %s" % (
                expr, d.get("exception", {}).get("description", d["text"])))
        return r["result"].get("value")

    async def wait(self, expr, timeout):
        deadline = time.monotonic() + timeout
        while True:
            v = await self.evaluate(expr)
            if v:
                return v
            if time.monotonic() > deadline:
                raise RuntimeError("still false after %g s: %s"
                                   % (timeout, expr))
            await asyncio.sleep(0.02)

    async def keys(self, text):
        await self.call("Input.insertText", text=text)
        enter = dict(key="Enter", code="Enter", windowsVirtualKeyCode=13,
                     nativeVirtualKeyCode=13)
        await self.call("Input.dispatchKeyEvent", type="keyDown", text="\r",
                        **enter)
        await self.call("Input.dispatchKeyEvent", type="keyUp", **enter)

    async def screenshot(self, path):
        r = await self.call("Page.captureScreenshot", format="png")
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main(port, prefix):
    url = await find_page(port, prefix)
    async with websockets.connect(url, max_size=None) as ws:
        page = Page(ws)
        answer({"ready": True})
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            try:
                cmd = json.loads(line)
                if "eval" in cmd:
                    answer({"value": await page.evaluate(cmd["eval"])})
                elif "wait" in cmd:
                    answer({"value": await page.wait(
                        cmd["wait"], cmd.get("timeout", 10))})
                elif "keys" in cmd:
                    await page.keys(cmd["keys"])
                    answer({})
                elif "screenshot" in cmd:
                    answer({"bytes": await page.screenshot(
                        cmd["screenshot"])})
                else:
                    answer({"error": "unknown command: " + line.strip()})
            except Exception as e:  # the spec shows what went wrong
                answer({"error": "%s: %s" % (type(e).__name__, e)})


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
