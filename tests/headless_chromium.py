"""A real headless Chromium driven over the DevTools protocol on a pipe (no extra Python package).

`--remote-debugging-pipe` makes Chromium read protocol commands from file descriptor 3 and write replies
and events to descriptor 4, each message JSON ended by a NUL byte: what Puppeteer does with `pipe: true`.
"""
import base64
import json
import os
import select
import subprocess
import tempfile
import time
from typing import Any, Dict, List, Optional

CHROMIUM = "/usr/bin/chromium"
# Offline and quiet: no network services, no first-run UI, no GPU; --no-sandbox because tests run as root;
# no /dev/shm, which containers keep small (64 MB in Docker).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
         "--disable-dev-shm-usage")


class DevToolsError(RuntimeError):
    pass


class HeadlessChromium:
    """One browser, one page. Use as a context manager; `load(url)`, `evaluate(js)`, `screenshot()`."""

    def __init__(self, executable: str = CHROMIUM, timeout_s: float = 60.0, width: int = 1280):
        self._executable, self._timeout_s, self._width = executable, timeout_s, width
        self._next_id = 0
        self._buffer = b""
        self._events: List[Dict] = []
        self._session: Optional[str] = None

    def __enter__(self) -> "HeadlessChromium":
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # The child sees our pipe ends as its descriptors 3 (commands in) and 4 (replies out).
        self._process = subprocess.Popen(
            [self._executable, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=lambda: _as_descriptors_3_and_4(to_browser_read, from_browser_write))
        os.close(to_browser_read)
        os.close(from_browser_write)
        targets = self.send("Target.getTargets")["targetInfos"]
        page = next(target for target in targets if target["type"] == "page")
        self._session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self._width, height=900, deviceScaleFactor=1,
                  mobile=False)
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self._session = None
            self.send("Browser.close")
        except (DevToolsError, OSError):
            pass
        finally:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            os.close(self._to_browser)
            os.close(self._from_browser)
            self._profile.cleanup()

    def send(self, method: str, **params) -> Dict[str, Any]:
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DevToolsError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def load(self, url: str) -> None:
        """Navigates and waits for the load event (every embedded image decoded by then)."""
        self._events.clear()
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise DevToolsError(f"navigation to {url} failed: {result['errorText']}")
        while not any(event.get("method") == "Page.loadEventFired" for event in self._events):
            self._events.append(self._read_message())

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """PNG of the whole page, not only the viewport."""
        return base64.b64decode(self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"])

    def _read_message(self) -> Dict:
        deadline = time.monotonic() + self._timeout_s
        while b"\0" not in self._buffer:
            readable, _, _ = select.select([self._from_browser], [], [], max(0.0, deadline - time.monotonic()))
            if not readable:
                raise DevToolsError(f"Chromium did not answer within {self._timeout_s} s")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise DevToolsError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)


def _as_descriptors_3_and_4(commands_in: int, replies_out: int) -> None:
    """In the child: the two pipe ends become descriptors 3 and 4 (copied first, in case they are 4 and 3)."""
    commands_in, replies_out = os.dup(commands_in), os.dup(replies_out)
    os.dup2(commands_in, 3)
    os.dup2(replies_out, 4)
