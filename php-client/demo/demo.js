/*
 * demo.js -- what the three demo pages share, loaded after herald.js and before the page's
 * own script (notify.js, chat.js, office.js):
 *
 *   Demo.cfg                   the page's settings {user, channel, wsUrl, ...}: the JSON that
 *                              the PHP page wrote into <script id="demo-config">
 *   Demo.$(id)                 document.getElementById(id)
 *   Demo.getText(url)          GET from the demo site; resolves the body as text
 *   Demo.connect(button, fn)   the page's Herald: a fresh connection token from token.php
 *                              before every attempt, the state shown in #state (and
 *                              body.offline), the form button #button, when given,
 *                              enabled only while open, and fn(), when given, called on
 *                              every open
 */
var Demo = (function () {
    'use strict';

    var cfg = JSON.parse(document.getElementById('demo-config').textContent);

    function $(id) {
        return document.getElementById(id);
    }

    /** GET `url` from the demo site and resolve its body as text. */
    function getText(url) {
        return fetch(url, { cache: 'no-store' }).then(function (r) {
            if (!r.ok) {
                throw new Error(url.split('?')[0] + ' answered ' + r.status);
            }
            return r.text();
        });
    }

    /** Connect as cfg.user, show the state, enable #button only while open (see above). */
    function connect(button, onOpen) {
        var herald = new Herald(cfg.wsUrl, {
            getToken: function () {
                return getText('token.php?user=' + encodeURIComponent(cfg.user));
            }
        });
        herald.onState(function (state) {
            var el = $('state');
            el.textContent = state;
            el.className = 'state ' + state;
            document.body.classList.toggle('offline', state !== 'open');
            if (button) {
                $(button).disabled = state !== 'open';
            }
            if (state === 'open' && onOpen) {
                onOpen();
            }
        });
        return herald;
    }

    return { cfg: cfg, $: $, getText: getText, connect: connect };
})();
