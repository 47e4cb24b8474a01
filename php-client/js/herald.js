/*
 * herald.js -- browser client for Herald, the WebSocket push daemon. No dependencies.
 *
 * Loading:    a classic script. `<script src="herald.js"></script>` defines the global `Herald`;
 *             under CommonJS or a bundler (webpack, esbuild, Vite) `require('./herald.js')`
 *             returns the class and no global is set. It is deliberately not an ES module: an
 *             `export` statement is a syntax error in a classic script.
 *
 * Usage:
 *     const h = new Herald('wss://example.com/ws', {
 *         getToken: async () => (await fetch('/herald-token')).text(),  // or token: '...'
 *     });
 *     h.on('order.shipped', (data, event) => { ... });   // one event
 *     h.on('*', (data, event) => { ... });               // every event
 *     h.off('order.shipped', fn);
 *     h.onState((state, info) => { ... });               // lifecycle, see below
 *     h.close();                                         // for good: no reconnect
 *     h.state;                     // 'connecting', 'open', or 'closed' once close() was called
 *
 * Options:    token        a connection token (a JWT from herald_token() in PHP), or
 *             getToken     a function returning a token or a Promise of one. It is called
 *                          before every connection attempt, so a token that expired while the
 *                          page was open is replaced on reconnect. Neither: anonymous.
 *             protocols    true (default): send the token as the subprotocol
 *                          "herald.token.<JWT>", which keeps it out of URLs and server logs;
 *                          false: append ?token=<JWT> to the URL.
 *             backoffBase  first reconnect delay ceiling in ms (500).
 *             backoffMax   largest reconnect delay ceiling in ms (30000).
 *             stableAfter  ms a connection must stay open to reset the backoff (10000).
 *             WebSocket    the WebSocket class to use (default: the global one); lets Node
 *                          run this file with the `ws` package.
 *
 * Lifecycle:  server events may have any name, so lifecycle events do not share `on()`:
 *             `onState(fn)` / `offState(fn)` register fn(state, info) with state one of
 *               'connecting'  info {retry}          a connection attempt starts; retry is null
 *                             for the first one, else the backoff step n it waited for
 *               'open'        info {}               the WebSocket is open
 *               'close'       info {code, reason, retryIn}   the WebSocket closed (code is
 *                             null if none was opened); retryIn is the delay before the next
 *                             attempt in ms, or null after close()
 *               'error'       info {error}          getToken() failed, the WebSocket could not
 *                             be created, or the socket reported an error (a 'close' follows).
 *
 * Reconnect:  automatic, with exponential backoff and full jitter: before attempt n (0-based
 *             count of consecutive failures) wait random(0, min(backoffMax, backoffBase * 2^n)).
 *             The count resets only after a connection stayed open stableAfter ms, so a server
 *             that accepts and drops at once is not hammered. A browser cannot see why a
 *             handshake failed (a 401 for a bad token looks like any network error), so
 *             failures simply keep backing off, ending at backoffMax per attempt; getToken()
 *             gets a chance to return a fresh token each time. Only close() stops it.
 *
 * Messages:   Herald sends text frames {"event": "<name>", "data": <any JSON>}. A frame that is
 *             not such JSON is ignored with a console.warn; an exception thrown by a handler
 *             is reported with console.error and does not stop the other handlers.
 *
 * Tests:      tests/js/herald-js.test.js, run by tests/integration/60-herald-js.py.
 */
(function (root, factory) {
    'use strict';
    var Herald = factory();
    if (typeof module === 'object' && module && module.exports) {
        module.exports = Herald;
    } else {
        root.Herald = Herald;
    }
})(typeof self !== 'undefined' ? self : this, function () {
    'use strict';

    var DEFAULTS = {
        protocols: true,
        backoffBase: 500,
        backoffMax: 30000,
        stableAfter: 10000,
    };

    /** Delay in ms before reconnect attempt `attempt` (0-based): full jitter. */
    function backoff(attempt, base, max, random) {
        base = base === undefined ? DEFAULTS.backoffBase : base;
        max = max === undefined ? DEFAULTS.backoffMax : max;
        random = random || Math.random;
        var ceiling = Math.min(max, base * Math.pow(2, Math.min(attempt, 30)));
        return Math.floor(random() * ceiling);
    }

    /** Call fn(args) and report, rather than propagate, what it throws. */
    function safeCall(fn, self, args) {
        try {
            fn.apply(self, args);
        } catch (e) {
            console.error('herald: handler failed:', e);
        }
    }

    /**
     * Open a connection to `url` (ws:// or wss://, Herald's ws_path) with `options` (see the
     * file header) and keep it open until close().
     */
    function Herald(url, options) {
        if (!(this instanceof Herald)) {
            throw new TypeError("Herald must be called with 'new'");
        }
        if (typeof url !== 'string' || !/^wss?:\/\//.test(url)) {
            throw new TypeError('Herald: url must start with ws:// or wss://');
        }
        options = options || {};
        this.url = url;
        this.options = {};
        for (var k in DEFAULTS) {
            this.options[k] = options[k] === undefined ? DEFAULTS[k] : options[k];
        }
        this._token = options.token;
        this._getToken = options.getToken;
        this._WebSocket = options.WebSocket ||
            (typeof WebSocket !== 'undefined' ? WebSocket : null);
        if (!this._WebSocket) {
            throw new TypeError('Herald: no WebSocket implementation; pass options.WebSocket');
        }
        this._handlers = {};        /* event name -> [fn] */
        this._stateHandlers = [];   /* [fn] */
        this._ws = null;            /* current WebSocket, or null */
        this._timer = null;         /* pending reconnect timeout, or null */
        this._attempt = 0;          /* consecutive failures since the last stable connection */
        this._openedAt = 0;         /* Date.now() when the current socket opened, or 0 */
        this._closed = false;       /* close() was called */
        this.state = 'connecting';  /* 'connecting' | 'open' | 'closed' */
        /* Start on the next tick, so handlers added right after `new` see every state. */
        var self = this;
        Promise.resolve().then(function () {
            self._connect(null);
        });
    }

    Herald._backoff = backoff;

    /** Call fn(data, event) for every message named `event`, or for all of them with '*'. */
    Herald.prototype.on = function (event, fn) {
        if (typeof fn !== 'function') {
            throw new TypeError('Herald.on: handler must be a function');
        }
        (this._handlers[event] = this._handlers[event] || []).push(fn);
        return this;
    };

    /** Remove a handler added with on(event, fn); without fn remove all for `event`. */
    Herald.prototype.off = function (event, fn) {
        var list = this._handlers[event];
        if (!list) {
            return this;
        }
        this._handlers[event] = fn ? list.filter(function (f) { return f !== fn; }) : [];
        return this;
    };

    /** Call fn(state, info) on every lifecycle change (see the file header). */
    Herald.prototype.onState = function (fn) {
        if (typeof fn !== 'function') {
            throw new TypeError('Herald.onState: handler must be a function');
        }
        this._stateHandlers.push(fn);
        return this;
    };

    /** Remove a handler added with onState(fn). */
    Herald.prototype.offState = function (fn) {
        this._stateHandlers = this._stateHandlers.filter(function (f) { return f !== fn; });
        return this;
    };

    /** Close the connection with 1000 and stop reconnecting, for good. */
    Herald.prototype.close = function () {
        if (this._closed) {
            return;
        }
        this._closed = true;
        if (this._timer !== null) {
            clearTimeout(this._timer);
            this._timer = null;
        }
        var ws = this._ws;
        this._ws = null;
        this.state = 'closed';
        if (ws) {
            ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
            try {
                ws.close(1000);
            } catch (e) {
                /* already closing */
            }
        }
        this._emitState('close', { code: 1000, reason: '', retryIn: null });
    };

    Herald.prototype._emitState = function (state, info) {
        var list = this._stateHandlers.slice();
        for (var i = 0; i < list.length; i++) {
            safeCall(list[i], this, [state, info]);
        }
    };

    /** Get a token (maybe asynchronously), then open a WebSocket with it. */
    Herald.prototype._connect = function (retry) {
        var self = this;
        this._timer = null;
        if (this._closed) {
            return;
        }
        this.state = 'connecting';
        this._emitState('connecting', { retry: retry });
        var got;
        try {
            got = this._getToken ? this._getToken() : this._token;
        } catch (e) {
            got = Promise.reject(e);
        }
        Promise.resolve(got).then(function (token) {
            if (!self._closed) {
                self._open(token);
            }
        }, function (error) {
            if (!self._closed) {
                self._emitState('error', { error: error });
                self._retry(null, '');
            }
        });
    };

    /** Create the WebSocket for `token` (falsy: anonymous) and wire its events. */
    Herald.prototype._open = function (token) {
        var self = this;
        var url = this.url;
        var protocols;
        if (token && this.options.protocols) {
            protocols = ['herald', 'herald.token.' + token];
        } else if (token) {
            url += (url.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token);
        }
        var ws;
        try {
            ws = protocols ? new this._WebSocket(url, protocols) : new this._WebSocket(url);
        } catch (e) {
            this._emitState('error', { error: e });
            this._retry(null, '');
            return;
        }
        this._ws = ws;
        ws.onopen = function () {
            self._openedAt = Date.now();
            self.state = 'open';
            self._emitState('open', {});
        };
        ws.onmessage = function (e) {
            self._dispatch(e.data);
        };
        ws.onerror = function (e) {
            self._emitState('error', { error: e });
        };
        ws.onclose = function (e) {
            ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
            if (self._ws !== ws) {
                return;
            }
            self._ws = null;
            if (self._openedAt && Date.now() - self._openedAt >= self.options.stableAfter) {
                self._attempt = 0;
            }
            self._openedAt = 0;
            self._retry(e.code, e.reason);
        };
    };

    /** Report the close and schedule the next attempt with backoff. */
    Herald.prototype._retry = function (code, reason) {
        var o = this.options;
        var delay = backoff(this._attempt, o.backoffBase, o.backoffMax);
        this.state = 'connecting';
        this._timer = setTimeout(this._connect.bind(this, this._attempt), delay);
        this._attempt++;
        this._emitState('close', { code: code, reason: reason || '', retryIn: delay });
    };

    /** Parse one frame and call the handlers for its event, then the '*' handlers. */
    Herald.prototype._dispatch = function (raw) {
        var msg;
        try {
            if (typeof raw !== 'string') {
                throw new TypeError('binary frame');
            }
            msg = JSON.parse(raw);
        } catch (e) {
            console.warn('herald: ignoring a message that is not JSON:', e.message);
            return;
        }
        if (!msg || typeof msg !== 'object' || typeof msg.event !== 'string') {
            console.warn('herald: ignoring a message without an "event" string');
            return;
        }
        var data = msg.data === undefined ? null : msg.data;
        var list = (this._handlers[msg.event] || []).concat(this._handlers['*'] || []);
        for (var i = 0; i < list.length; i++) {
            safeCall(list[i], this, [data, msg.event]);
        }
    };

    return Herald;
});
