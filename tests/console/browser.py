#!/usr/bin/env python3
"""Drives the web console in headless Chromium against a live server.

Chromium is driven through the DevTools protocol over a pipe
(--remote-debugging-pipe: JSON messages ending in NUL on fds 3 and 4), so
nothing beyond Python's standard library and Debian's `chromium` is needed.
Credentials go in as an Authorization header (Network.setExtraHTTPHeaders),
never in a URL. Each step takes a screenshot into --out.

Exit status: 0 when every check passed, 1 when one failed, 77 when
Chromium cannot be found (the caller reports the test as skipped).
"""

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

STEP_TIMEOUT = 30.0


class Failed(Exception):
    pass


def high(fd):
    """`fd` moved to a number of 10 or more."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    def __init__(self, chromium, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # The child's ends move above 3 and 4 first, so that making them
        # its fds 3 and 4 cannot close one another.
        to_chrome_r = high(to_chrome_r)
        from_chrome_w = high(from_chrome_w)
        args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--metrics-recording-only",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            "--user-data-dir=" + profile,
            "about:blank",
        ]
        # The pipe's ends become the child's fds 3 (commands) and 4
        # (answers); bash, since dash takes one-digit descriptors only.
        script = 'exec "$0" "$@" 3<&%d 4>&%d %d<&- %d>&-' % (
            to_chrome_r, from_chrome_w, to_chrome_r, from_chrome_w)
        self.process = subprocess.Popen(
            ["bash", "-c", script, chromium] + args,
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.session = None
        self.log = []

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_chrome)
        os.close(self.from_chrome)

    def _read_message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Failed("Chromium did not answer in time")
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise Failed("Chromium closed its pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def _event(self, message):
        method = message.get("method", "")
        params = message.get("params", {})
        if method == "Page.javascriptDialogOpening":
            # The deploy button asks first; an operator says yes.
            self.log.append("dialog: " + params.get("message", ""))
            self.send("Page.handleJavaScriptDialog", {"accept": True})
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.log.append("%s: %s" % (entry.get("level"), entry.get("text")))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.log.append("exception: %s" % details.get("text"))
        self.events.append(message)

    def send(self, method, params=None, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        return self.next_id

    def call(self, method, params=None, session=True, timeout=STEP_TIMEOUT):
        wanted = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise Failed("%s: %s" % (method, message["error"]))
                return message.get("result", {})
            if "method" in message:
                self._event(message)

    def wait_event(self, method, timeout=STEP_TIMEOUT):
        deadline = time.monotonic() + timeout
        for i, message in enumerate(self.events):
            if message.get("method") == method:
                del self.events[: i + 1]
                return message
        self.events.clear()
        while True:
            message = self._read_message(deadline)
            if "method" in message:
                self._event(message)
                if message["method"] == method:
                    self.events.clear()
                    return message

    def open_tab(self):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            self.call(domain + ".enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": False},
        )

    def sign_in(self, user, password):
        token = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        self.call("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + token}})

    def navigate(self, url):
        self.events.clear()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise Failed("opening %s: %s" % (url, result["errorText"]))
        self.wait_event("Page.loadEventFired")

    def eval(self, expression):
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise Failed("evaluating %s: %s" % (expression, result["exceptionDetails"]))
        return result.get("result", {}).get("value")

    def text(self, selector):
        return self.eval(
            "(function(){var e=document.querySelector(%s);return e?e.textContent:null})()"
            % json.dumps(selector))

    def screenshot(self, path):
        # Whole page, as far as it goes.
        height = self.eval("Math.min(document.documentElement.scrollHeight, 4000)") or 860
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": int(height), "deviceScaleFactor": 1, "mobile": False},
        )
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": False},
        )
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the console, http://IP:PORT/BASE/ui/")
    parser.add_argument("--admin", required=True, help="USER:PASSWORD with deploy")
    parser.add_argument("--reader", required=True, help="USER:PASSWORD without deploy")
    parser.add_argument("--restricted", required=True, help="USER:PASSWORD restricted to some hosts")
    parser.add_argument("--visible", required=True, help="a host the restricted user sees")
    parser.add_argument("--hidden", required=True, help="a host the restricted user does not see")
    parser.add_argument("--template", required=True, help="a host template")
    parser.add_argument("--unreachable", required=True, help="a host whose agent is down")
    parser.add_argument("--out", required=True, help="where the screenshots go")
    parser.add_argument("--stage-wait", type=int, default=8,
                        help="seconds between the stages of the deploy the console starts")
    args = parser.parse_args()

    chromium = os.environ.get("STEWARD_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if not chromium:
        print("SKIPPED: no chromium on PATH (apt-get install chromium)")
        return 77
    os.makedirs(args.out, exist_ok=True)
    base = args.url if args.url.endswith("/") else args.url + "/"
    checks = []

    def check(condition, what):
        checks.append((bool(condition), what))
        print(("ok    " if condition else "FAILED") + "  " + what, flush=True)

    def shot(browser, name):
        path = os.path.join(args.out, name + ".png")
        browser.screenshot(path)
        print("screenshot " + path, flush=True)

    profile = tempfile.mkdtemp(prefix="steward-chromium-")
    browser = Browser(chromium, profile)
    try:
        browser.open_tab()
        admin_user, admin_password = args.admin.split(":", 1)
        browser.sign_in(admin_user, admin_password)

        # The fleet.
        browser.navigate(base)
        check(browser.text("h1") == "Fleet", "the fleet page opens for the admin")
        names = browser.eval("Array.from(document.querySelectorAll('#hosts tbody td:first-child a')).map(a => a.textContent)")
        check(args.visible in names and args.hidden in names, "the fleet lists every host: %s" % names)
        check(browser.text("#total") == str(len(names)), "the count at the top matches the list")
        check(browser.text("#user") == admin_user, "the page names who is signed in")
        shot(browser, "fleet")

        # A host.
        browser.navigate(base + "host?name=" + args.visible)
        check(browser.text("#name") == args.visible, "a host's page opens")
        origin = browser.eval(
            "Array.from(document.querySelectorAll('#props tbody tr')).filter(r => r.querySelector('th').textContent == 'scripts').map(r => r.lastElementChild.textContent)")
        check(args.template in (origin or []), "a resolved value names its template: %s" % origin)
        check("current" in (browser.text("#agent") or ""), "its agent confirmed the current allowlist")
        shot(browser, "host")

        # A template's graph.
        browser.navigate(base + "template?name=" + args.template)
        hosts = browser.text("#hosts") or ""
        check(args.visible in hosts, "the template lists the hosts importing it")
        shot(browser, "template")

        # The dry run, then a deploy through the form, followed live.
        browser.navigate(base + "pending")
        check(browser.text("#status") == "would-deploy", "the dry run says a deploy would change something")
        pending = browser.text("#pending") or ""
        check(args.visible in pending, "the dry run lists the changed hosts")
        shot(browser, "pending")
        # Staged: one host, a pause, then the rest (one failure tolerated,
        # so the unreachable agent halts nothing whichever stage it is in).
        browser.eval(
            "(function(){var f=document.getElementById('deploy-form');"
            "f.elements.stages.value='1,100%%';f.elements.max_failed.value='1';"
            "f.elements.stage_wait.value='%d'})()" % args.stage_wait)
        browser.events.clear()
        browser.eval("document.getElementById('deploy').click()")
        browser.wait_event("Page.loadEventFired")
        url = browser.eval("location.pathname + location.search")
        check("/ui/deployment?id=" in url, "the deploy lands on its deployment: %s" % url)
        started = browser.eval("document.getElementById('deployment').dataset.final")
        followed = started == "false"
        check(followed, "the staged deployment is running when its page loads")

        # Between the stages: the first one's results shown, the status
        # still running, the page following it.
        def live_view():
            return browser.eval(
                "({status: document.getElementById('status').textContent,"
                " live: document.getElementById('live').textContent,"
                " stages: Array.from(document.querySelectorAll('#stages tbody tr'))"
                ".map(r => Array.from(r.cells).map(c => c.textContent))})")

        def between_stages(view):
            stages = view["stages"]
            return (view["status"] == "running" and len(stages) == 2
                    and stages[0][2] == "done" and stages[0][5] == "0" and stages[1][2] == "waiting")

        deadline = time.monotonic() + args.stage_wait
        view = live_view()
        while not between_stages(view) and view["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
            view = live_view()
        check(between_stages(view), "the live page shows the first stage done while the deployment runs: %s" % view)
        check(view["stages"] and view["stages"][0][1] == "1"
              and int(view["stages"][0][3]) + int(view["stages"][0][4]) == 1,
              "the first stage's one host has its result on the page: %s" % view["stages"])
        check(view["live"] == "Following live…", "the page says it follows the deployment: %r" % view["live"])
        shot(browser, "deployment-live")
        check(between_stages(live_view()), "the live screenshot was taken before the second stage began")
        # Set on this page only: still there at the end, the page was
        # updated in place rather than reloaded.
        browser.eval("window.stewardSamePage = true")

        deadline = time.monotonic() + 60
        status = browser.text("#status")
        while status == "running" and time.monotonic() < deadline:
            time.sleep(0.5)
            status = browser.text("#status")
        check(status in ("partial", "failed", "succeeded"), "the deployment finished: %s" % status)
        # One viewer asks the server at most once a second (each ask is a
        # long poll that answers at a change).
        polls = sorted(event["params"]["timestamp"] for event in browser.events
                       if event.get("method") == "Network.requestWillBeSent"
                       and "/ui/deployment/progress" in event["params"]["request"]["url"])
        gaps = [round(later - earlier, 2) for earlier, later in zip(polls, polls[1:])]
        check(len(polls) >= 2, "the page asked for the deployment's progress: %d times" % len(polls))
        check(all(gap >= 0.95 for gap in gaps), "at most one progress request a second: gaps %s s" % gaps)
        if followed:
            check(browser.text("#live") == "Finished.", "the page followed it live to its end")
        else:
            print("note  the deployment had finished before its page loaded: nothing to follow")
        check(browser.eval("window.stewardSamePage === true"), "the page reached the end without a reload")
        stages = live_view()["stages"]
        check([row[2] for row in stages] == ["done", "done"], "both stages are done on the page: %s" % stages)
        check(browser.text("#count-deployed") not in (None, "0"), "hosts were deployed")
        troubles = browser.text("#troubles") or ""
        check(args.unreachable in troubles, "the unreachable host is listed with its error")
        shot(browser, "deployment")
        browser.navigate(base + "deployments")
        shot(browser, "deployments")
        browser.navigate(base + "activity")
        check("deployment" in (browser.text(".activity") or ""), "the activity log shows the deploy")
        shot(browser, "activity")

        # A reader sees no deploy button.
        reader_user, reader_password = args.reader.split(":", 1)
        browser.sign_in(reader_user, reader_password)
        browser.navigate(base + "pending")
        check(browser.eval("document.getElementById('deploy') === null"), "a reader gets no deploy button")
        check(browser.text("#user").startswith(reader_user), "the reader is signed in")

        # A restricted user sees their hosts only.
        restricted_user, restricted_password = args.restricted.split(":", 1)
        browser.sign_in(restricted_user, restricted_password)
        browser.navigate(base)
        names = browser.eval("Array.from(document.querySelectorAll('#hosts tbody td:first-child a')).map(a => a.textContent)")
        check(args.visible in names and args.hidden not in names, "a restricted user sees only their hosts: %s" % names)
        shot(browser, "restricted-fleet")
        browser.navigate(base + "host?name=" + args.hidden)
        check(browser.text("h1") == "404 Not Found", "another host's page is not found for them")

        violations = [line for line in browser.log if "Content Security Policy" in line or "Refused" in line]
        check(not violations, "no Content-Security-Policy violation: %s" % violations)
        errors = [line for line in browser.log if line.startswith("exception")]
        check(not errors, "no script error: %s" % errors)
    except Failed as e:
        check(False, str(e))
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)
    failed = sum(1 for ok, _ in checks if not ok)
    print("screenshots in " + os.path.abspath(args.out))
    print("%d passed, %d failed" % (len(checks) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
