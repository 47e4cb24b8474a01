"""
90-browser.py -- end to end in a real browser: nginx, php-fpm, Herald and headless Chromium.

On loopback, all started here and stopped by PID: a private php-fpm (tests/lib/phpfpm.py), Herald
(WebSocket on a unix socket, history_file set), and a private nginx (/usr/sbin/nginx, as in
50-nginx.py) that includes nginx/herald-map.conf and nginx/herald.conf verbatim but for the
upstream socket and the access log path, and that serves tests/integration/web/: page.php and
publish.php through fastcgi_pass to php-fpm, /herald.js and /herald.mjs as static files
(php-client/js/). tests/js/browser-e2e.js runs Debian's Chromium through playwright-core (no
browser download) and reports what the page shows.

What a visitor sees, read from the page's DOM:
  1. page.php (signed with herald_token()) connects through nginx's /ws; a POST to
     publish.php, whose herald_publish() reaches the one open tab, appears in the page.
  2. Herald stops (SIGTERM: close 1001, history saved to history_file); the page keeps retrying
     (nginx answers 502 meanwhile). A second Herald starts with the same history_file, secret
     and API socket; publish.php publishes while the page cannot reach it yet (delivered 0).
     Herald listens on a second socket for that, which then becomes what nginx's upstream
     path points to (a symlink): the page reconnects by itself, without a reload, and shows
     the missed message once, with "user: recovered" from onRecover; a live publish follows,
     and the list is the three messages in order, none twice. The second Herald's /stats
     counts one recovery and no failed one; nginx's access log shows both WebSockets (101).
  3. page.php?entry=module imports the ES module herald.mjs in a module script instead of
     herald.js: it connects, shows a publish, and defines no global Herald.
A screenshot of the final page is kept in $HERALD_TEST_OUT/<build>/90-browser.png (by default
build/test-results/build/ for build/herald, build-san/ for the sanitized binary), or
90-browser-failed.png when the test fails; the path is printed.

Needs /usr/bin/chromium, node, and `npm ci --prefix tests/js` (playwright-core 1.61, the last
release that runs on Debian 12's nodejs 18.19; 66-node-engines.py holds every package to it).
"""

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from browser import Browser, artifact_path, require_browser
from herald import Herald
from nginx import Nginx, read
from phpfpm import PhpFpm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WEB = os.path.join(ROOT, "tests", "integration", "web")
HERALD_JS = os.path.join(ROOT, "php-client", "js", "herald.js")
HERALD_MJS = os.path.join(ROOT, "php-client", "js", "herald.mjs")
# The site's server{}, inside the shared test nginx's http{} (tests/lib/nginx.py).
SITE_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {web};
        types {{
            text/html html;
            application/javascript js mjs;
        }}
        default_type application/octet-stream;
        include {tmp}/herald.conf;
        location = /herald.js {{
            alias {herald_js};
        }}
        location = /herald.mjs {{
            alias {herald_mjs};
        }}
        location ~ ^/[a-z]+\\.php$ {{
            fastcgi_pass unix:{fpm_socket};
            fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
            fastcgi_param SCRIPT_NAME $fastcgi_script_name;
            fastcgi_param DOCUMENT_ROOT $document_root;
            fastcgi_param DOCUMENT_URI $document_uri;
            fastcgi_param REQUEST_URI $request_uri;
            fastcgi_param QUERY_STRING $query_string;
            fastcgi_param REQUEST_METHOD $request_method;
            fastcgi_param CONTENT_TYPE $content_type;
            fastcgi_param CONTENT_LENGTH $content_length;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param SERVER_NAME $server_name;
            fastcgi_param SERVER_PORT $server_port;
            fastcgi_param REMOTE_ADDR $remote_addr;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        }}
        location / {{ return 404; }}
    }}"""


def publish(base, user, text):
    """POST publish.php (nginx, php-fpm, herald_publish()); its "delivered"."""
    body = urllib.parse.urlencode({"user": user, "text": text}).encode()
    try:
        with urllib.request.urlopen(base + "/publish.php", body, timeout=10) as r:
            return json.loads(r.read())["delivered"]
    except urllib.error.HTTPError as e:
        pytest.fail("publish.php answered %d: %s" % (e.code, e.read()[:500]))


def test_page_through_nginx_shows_a_publish_and_recovers_it_across_a_restart(capsys):
    require_browser()
    tmp = tempfile.mkdtemp(prefix="herald-browser-%d-" % os.getpid())
    ws_sock = os.path.join(tmp, "ws.sock")           # nginx's upstream: Herald, or a symlink
    history = os.path.join(tmp, "history")
    config = {"listen": "unix:" + ws_sock, "api_socket": os.path.join(tmp, "api.sock"),
              "history_file": history}
    user = "visitor-%d" % os.getpid()
    fpm = PhpFpm(children=2)
    first = second = ngx = browser = None
    shot = None                                       # the screenshot taken, to print
    for old in ("90-browser.png", "90-browser-failed.png"):
        if os.path.exists(artifact_path(old)):
            os.remove(artifact_path(old))
    try:
        fpm.start()
        first = Herald(config=config, workers=2).start()
        fpm.configure(secret=first.secret, api_socket=first.api_socket)
        ngx = Nginx("unix:" + ws_sock, SITE_SERVER, web=WEB, herald_js=HERALD_JS,
                    herald_mjs=HERALD_MJS, fpm_socket=fpm.socket).start()
        os.mkdir(os.path.join(tmp, "browser"))
        browser = Browser(os.path.join(tmp, "browser"))

        assert browser.open(ngx.url + "/page.php?user=" + user)["status"] == 200
        opened = browser.wait_dom(lambda d: d["opens"] == 1 and d["state"] == "open", 10,
                                  "the page to connect through nginx")
        assert publish(ngx.url, user, "before the restart") == 1
        browser.wait_dom(lambda d: d["messages"] == ["before the restart"], 5,
                         "the first note in the page")

        first.stop()                                  # SIGTERM: 1001, history saved
        assert os.path.exists(history), "Herald saved no history on SIGTERM"
        assert not os.path.lexists(ws_sock), "Herald left its socket behind"
        browser.wait_dom(lambda d: d["closes"][:1] == [1001] and len(d["closes"]) >= 2, 10,
                         "close 1001 and a failed reconnect while Herald is down")

        # The same daemon settings but the socket: the page cannot reach it yet.
        side = os.path.join(tmp, "ws-2.sock")
        second = Herald(config=dict(config, listen="unix:" + side, secret=first.secret),
                        workers=2).start()
        second.secret = first.secret                  # the one its log must never show
        assert publish(ngx.url, user, "while the page was away") == 0
        os.symlink(side, ws_sock)                     # now nginx reaches the second Herald
        browser.wait_dom(lambda d: d["opens"] == 2 and len(d["messages"]) >= 2
                         and d["recoveries"], 10, "the page to reconnect and recover")
        assert publish(ngx.url, user, "after the reconnect") == 1
        browser.wait_dom(lambda d: len(d["messages"]) >= 3, 5, "the live note")
        time.sleep(0.5)                               # room for anything delivered twice
        final = browser.dom()
        assert final["messages"] == ["before the restart", "while the page was away",
                                     "after the reconnect"], final
        assert final["recoveries"] == ["user: recovered"], final
        assert final["state"] == "open" and final["opens"] == 2, final
        assert final["load"] == opened["load"], "the page was reloaded"
        assert (final["entry"], final["global"]) == ("classic", True), final
        recoveries = second.stats()["recoveries"]
        assert recoveries == {"ok": 1, "failed": 0}, recoveries
        assert not browser.page_errors, browser.log()

        shot = artifact_path("90-browser.png")
        browser.screenshot(shot)
        browser.close()
        second.stop()
        ngx.stop()
        lines = [l for l in read(ngx.access_log).splitlines() if '"GET /ws HTTP/1.1" 101 ' in l]
        assert len(lines) == 2, "expected both WebSockets in nginx's log:\n" + \
            read(ngx.access_log)
    except BaseException:
        if browser is not None and browser.proc.poll() is None:
            try:
                browser.screenshot(artifact_path("90-browser-failed.png"))
                shot = artifact_path("90-browser-failed.png")
            except BaseException:           # the original failure matters more
                pass
        for what, text in (("nginx error log", ngx and read(ngx.error_log)),
                           ("php-fpm", fpm.dir and fpm.log_text()),
                           ("first herald", first and first.log_text()),
                           ("second herald", second and second.log_text())):
            if text:
                print("--- %s\n%s" % (what, text[-3000:]))
        raise
    finally:
        if browser is not None:
            browser.close()
        if ngx is not None:
            ngx.cleanup()
        for h in (second, first):
            if h is not None:
                h.cleanup()
        fpm.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
        if shot is not None:
            with capsys.disabled():
                print("\n90-browser: Chromium %s; screenshot: %s"
                      % (browser.version if browser else "?", shot))


def test_page_importing_the_es_module_connects_and_shows_a_publish():
    require_browser()
    tmp = tempfile.mkdtemp(prefix="herald-browser-%d-" % os.getpid())
    ws_sock = os.path.join(tmp, "ws.sock")
    config = {"listen": "unix:" + ws_sock, "api_socket": os.path.join(tmp, "api.sock")}
    user = "module-%d" % os.getpid()
    fpm = PhpFpm(children=2)
    herald = ngx = browser = None
    try:
        fpm.start()
        herald = Herald(config=config, workers=1).start()
        fpm.configure(secret=herald.secret, api_socket=herald.api_socket)
        ngx = Nginx("unix:" + ws_sock, SITE_SERVER, web=WEB, herald_js=HERALD_JS,
                    herald_mjs=HERALD_MJS, fpm_socket=fpm.socket).start()
        os.mkdir(os.path.join(tmp, "browser"))
        browser = Browser(os.path.join(tmp, "browser"))
        assert browser.open(ngx.url + "/page.php?entry=module&user=" + user)["status"] == 200
        browser.wait_dom(lambda d: d["opens"] == 1 and d["state"] == "open", 10,
                         "the module page to connect through nginx")
        assert publish(ngx.url, user, "to the module") == 1
        d = browser.wait_dom(lambda d: d["messages"] == ["to the module"], 5,
                             "the note in the module page")
        assert (d["entry"], d["global"]) == ("module", False), d
        assert not browser.page_errors, browser.log()
        browser.close()
        herald.stop()
        ngx.stop()
    except BaseException:
        for what, text in (("nginx error log", ngx and read(ngx.error_log)),
                           ("php-fpm", fpm.dir and fpm.log_text()),
                           ("herald", herald and herald.log_text())):
            if text:
                print("--- %s\n%s" % (what, text[-3000:]))
        raise
    finally:
        if browser is not None:
            browser.close()
        if ngx is not None:
            ngx.cleanup()
        if herald is not None:
            herald.cleanup()
        fpm.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
