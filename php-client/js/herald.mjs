/*
 * herald.mjs -- browser client for Herald, the WebSocket push daemon. No dependencies.
 *
 * Loading:    this file is the client's source, an ES module: `import { Herald } from
 *             './herald.mjs'` in a `<script type="module">`, a bundler or Node (18.19 and up);
 *             the default export is Herald too. herald.js, the classic-script build
 *             (`<script src="herald.js">` defines the global `Herald`; require() returns the
 *             class), is generated from this file by build.js, which wraps the code below in a
 *             function instead of exporting it: edit this file, then run
 *             `node php-client/js/build.js`. tests/integration/61-herald-js-package.py fails
 *             while herald.js is stale. Because herald.js runs in old browsers, the code needs
 *             Promise and nothing newer (no arrow functions, classes, let/const or async/await);
 *             the only ES module syntax is the export block at the end, which build.js checks.
 *             Types: herald.d.ts (herald.d.mts for import). npm package: package.json here.
 *
 * Usage:
 *     const h = new Herald('wss://example.com/ws', {
 *         getToken: async () => (await fetch('/herald-token')).text(),  // or token: '...'
 *     });
 *     h.on('order.shipped', (data, event, meta) => { ... });   // one event
 *     h.on('*', (data, event, meta) => { ... });               // every event
 *     h.off('order.shipped', fn);
 *     h.onState((state, info) => { ... });               // lifecycle, see below
 *     h.close();                                         // for good: no reconnect
 *     h.state;                     // 'connecting', 'open', or 'closed' once close() was called
 *
 *   Channels, presence and RPC (docs/protocol.md, section 1):
 *     await h.subscribe('team:12');                      // resolves {} ...
 *     const {members} = await h.subscribe('room:1');     // ... or {members} on presence channels
 *     await h.subscribe('doc:7', {token: channelJwt});   // herald_channel_token() in PHP
 *     await h.unsubscribe('team:12');                    // and forget it
 *     await h.publish('team:12', {text: 'hi'}, {event: 'chat', echo: false});
 *     const tasks = await h.rpc('tasks.list', {done: false}, {timeout: 5000});
 *     h.members('room:1');                               // [{user, info}, ...]
 *     h.onPresence((kind, channel, member) => { ... });  // 'join' | 'leave', {user, info}
 *     h.onError((err) => { ... });                       // errors no promise can take
 *     h.offPresence(fn); h.offError(fn);
 *     try { ... } catch (e) { e instanceof Herald.HeraldError; e.code; e.message; }
 *
 *   History and recovery (docs/protocol.md, "Recovery"):
 *     h.onRecover((stream, recovered) => { ... });       // after each reconnect, per stream:
 *                                                        // null (the user's) or a channel name
 *     h.offRecover(fn);
 *     h.position();            // {user: '3f2a9c01:17', channels: {'team:12': '3f2a9c01:18'}}
 *
 * Options:    token        a connection token (a JWT from herald_token() in PHP), or
 *             getToken     a function returning a token or a Promise of one. It is called
 *                          before every connection attempt, so a token that expired while the
 *                          page was open is replaced on reconnect. Neither: anonymous.
 *             protocols    true (default): send the token as the subprotocol
 *                          "herald.token.<JWT>", which keeps it out of URLs and server logs;
 *                          false: append ?token=<JWT> to the URL. Either way ?since= is
 *                          appended too (see Recovery).
 *             backoffBase  first reconnect delay ceiling in ms (500).
 *             backoffMax   largest reconnect delay ceiling in ms (30000).
 *             stableAfter  ms a connection must stay open to reset the backoff (10000).
 *             rpcTimeout   default rpc() timeout in ms (15000).
 *             WebSocket    the WebSocket class to use (default: the global one); lets Node
 *                          run this file with the `ws` package.
 *
 * Lifecycle:  server events may have any name, so lifecycle events do not share `on()`:
 *             `onState(fn)` / `offState(fn)` register fn(state, info) with state one of
 *               'connecting'  info {retry}          a connection attempt starts; retry is null
 *                             for the first one, else the backoff step n it waited for
 *               'open'        info {}               the WebSocket is open (remembered channels
 *                             and queued commands have just been sent)
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
 * Messages:   Herald sends text frames {"event": "<name>", "data": <any JSON>}, with "channel"
 *             added for a channel publish and "from" (the sender's verified user id) for one
 *             made by a client, and "id" for every message of a user stream or channel (see
 *             Recovery; broadcasts have none). on(event, fn) calls fn(data, event, meta), meta
 *             being {channel, from, id} (undefined when the frame has none). Frames with an "op" are
 *             answers, presence and the stream frame, handled below and never passed to on().
 *             A frame that is not such JSON is ignored with a console.warn; an exception thrown
 *             by a handler is reported with console.error and does not stop the other handlers.
 *
 * Commands:   subscribe, unsubscribe, publish and rpc send one JSON command with a `ref` (an
 *             integer counting from 1 on each connection) and return a Promise settled by the
 *             answer with that ref. Rejections are HeraldError {name, code, message}, with
 *             `channel` too for subscribe, unsubscribe and publish: a code from
 *             docs/protocol.md ('forbidden', 'bad_token', 'not_subscribed', 'rpc_busy', PHP's
 *             own codes, ...; 'bad_channel' and 'bad_command' also when the channel or method
 *             is not a non-empty string, without asking Herald), or one the client makes:
 *               'disconnected'  publish() or rpc() while not open; any command whose answer
 *                               had not come when the connection closed; anything after
 *                               close() (queued subscribe/unsubscribe included)
 *               'timeout'       rpc() had no answer within its timeout; a late answer is
 *                               dropped
 *             subscribe(channel, {token}) resolves {} or, on a presence channel, {members}
 *             (a copy, the subscriber included). unsubscribe(channel) resolves undefined;
 *             publish(channel, data, {event = 'message', echo = true}) resolves undefined
 *             once every worker holding the channel has the message queued (echo: false
 *             skips this connection only, not the user's other tabs); rpc(method, data,
 *             {timeout = rpcTimeout}) resolves the reply's data (timeout 0: wait for Herald,
 *             whose own rpc_timeout answers 'rpc_timeout').
 *
 * Channels:   the client remembers every channel it was asked to subscribe to, with its
 *             channel token, until unsubscribe() or a refusal. subscribe() and unsubscribe()
 *             made while not open are queued and sent, in order, on the next open; on every
 *             open after the first, the remembered channels are subscribed again (before the
 *             queue), each from its last id (see Recovery). A refused resubscription (say the
 *             channel token expired) forgets that channel and goes to onError as a HeraldError
 *             with `channel` set. The token is sent as given each time: for channels that
 *             outlive a token's ttl, unsubscribe and subscribe again with a fresh one.
 *
 * Presence:   members(channel) is the member list [{user, info}] of a subscribed presence
 *             channel ([] otherwise): the subscribe answer's list, then every join (adds or
 *             replaces by user) and leave (removes by user). onPresence(fn) registers
 *             fn(kind, channel, member) for each join and leave Herald sends (a user's first
 *             tab in a channel is announced to itself too); member is {user, info} (info null
 *             when absent; on a leave, the info that user joined with). When a
 *             resubscription after a reconnect answers, members() takes the new list and
 *             onPresence gets a 'leave' for each member gone and a 'join' for each new one, so
 *             a list kept from onPresence matches members() again. Until then (while
 *             disconnected) members() keeps the last list it had. Presence frames for a
 *             channel unsubscribe() was called for are ignored.
 *
 * Recovery:   Herald numbers every message of a user stream (publishes to the user) and of a
 *             channel with "id": "<epoch>:<offset>"; the epoch changes when Herald restarts
 *             (unless its history_file carries the history over), the offset grows within an
 *             epoch (broadcasts have no id). The client keeps the last id
 *             of its user stream (from the user's messages and the "stream" frame) and of each
 *             remembered channel (from its messages and the subscribe answer's "id");
 *             position() returns {user, channels: {name: id}} (null where none), for debugging.
 *               - Every connection asks for the user stream from its last id: ?since=<id> is
 *                 appended to the URL, URL-encoded, whether the token goes as subprotocol or as
 *                 ?token= ("?since=" when there is no id yet, as on the first connection).
 *                 Herald replays what the user missed, then sends {"op":"stream","id",
 *                 "recovered"}; anonymous connections have no user stream and get neither.
 *               - Each resubscription after a reconnect carries "since": the channel's last id
 *                 (left out when it has none, e.g. Herald keeps no history). Herald replays what
 *                 the channel missed, then answers ok with "id" and "recovered". A subscribe()
 *                 call sends no since; its ok's "id" becomes the position, except when the
 *                 connection already had the channel (then what it received is exact).
 *                 unsubscribe() forgets the channel's position.
 *               - on() never sees an id twice: a message whose id is of the same epoch as its
 *                 stream's last id and not above it was delivered already, and is dropped (a
 *                 replay overlapping what was seen). An id of another epoch starts the stream
 *                 afresh. Messages without an id are always delivered.
 *             onRecover(fn) / offRecover(fn) register fn(stream, recovered): after every
 *             reconnect (never on the first connection), once per stream, after the replayed
 *             messages of that stream went to on(). stream is null for the user stream (on the
 *             stream frame; only when the connection has a token) or the channel name (on the
 *             ok of its resubscription, after its presence changes). recovered true: nothing
 *             was lost. recovered false: messages may have been lost (Herald restarted, its
 *             history no longer reaches back to the last id, or the client had no id to ask
 *             from), and the page should reload that stream's state. A Herald without history
 *             sends no stream frame: the first other frame then means false for the user
 *             stream; a resubscription answered without "recovered" means false for its
 *             channel. A refused resubscription goes to onError only. A reconnect that closes
 *             before its answers came reports nothing; the next one asks from the same ids.
 *             While connected, {"op":"stream","gap":true} (a cluster's Redis lost messages
 *             of a stream, docs/protocol.md) calls fn(stream, false) too.
 *
 * Errors:     onError(fn) / offError(fn) register fn(err) for HeraldErrors no promise can
 *             take: an "error" answer without a ref, and refused resubscriptions. With no
 *             onError handler they go to console.warn. HeraldError is Herald.HeraldError and
 *             a named export (herald.js sets no second global); it is an Error.
 *
 * Tests:      tests/js/herald-js.test.js (unit tests and the live mode of
 *             tests/integration/60-herald-js.py, run against herald.js and against herald.mjs);
 *             tests/js/herald-js-driver.js, driven by tests/integration/62-herald-js-channels.py
 *             and 64-herald-js-recovery.py against the real daemon; the npm package, the build
 *             and the types by tests/integration/61-herald-js-package.py and 63-herald-js-types.py.
 */

var DEFAULTS = {
    protocols: true,
    backoffBase: 500,
    backoffMax: 30000,
    stableAfter: 10000,
    rpcTimeout: 15000,
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

/** Call every function in `list` (a copy is taken first) with `args`, via safeCall. */
function callAll(list, self, args) {
    list = list.slice();
    for (var i = 0; i < list.length; i++) {
        safeCall(list[i], self, args);
    }
}

/** Return `list` without `fn`, or an empty list when fn is not given. */
function without(list, fn) {
    return fn ? list.filter(function (f) { return f !== fn; }) : [];
}

/**
 * A refused or failed command: `code` is one of docs/protocol.md's error codes, PHP's own
 * (herald_rpc_error()), or 'disconnected' / 'timeout' made by this client.
 */
function HeraldError(code, message) {
    this.name = 'HeraldError';
    this.code = code;
    this.message = message || code;
    if (Error.captureStackTrace) {
        Error.captureStackTrace(this, HeraldError);
    } else {
        this.stack = new Error(this.message).stack;
    }
}
HeraldError.prototype = Object.create(Error.prototype);
HeraldError.prototype.constructor = HeraldError;
HeraldError.prototype.name = 'HeraldError';

/** The HeraldError for an {"op":"error"} frame. */
function errorFrom(msg) {
    var code = typeof msg.code === 'string' ? msg.code : 'unknown';
    return new HeraldError(code, typeof msg.message === 'string' ? msg.message : code);
}

/** A member as the API shows it, {user, info}, from a members entry or a join/leave frame. */
function member(m) {
    return { user: String(m.user), info: m.info === undefined ? null : m.info };
}

/**
 * Split a stream id "<epoch>:<offset>" into [epoch, offset digits without leading zeros],
 * or null when it is not one. Offsets stay strings: they may pass 2^53.
 */
function parseId(id) {
    var m = typeof id === 'string' ? /^([^:]+):0*([0-9]+)$/.exec(id) : null;
    return m ? [m[1], m[2]] : null;
}

/**
 * Does a message with `id` come after `last` in its stream? Only an id of the same epoch
 * with an offset not above last's is a repeat; a new epoch (Herald restarted), or no
 * position yet, starts afresh.
 */
function isAfter(id, last) {
    var a = parseId(id);
    var b = parseId(last);
    if (!a || !b || a[0] !== b[0]) {
        return true;
    }
    return a[1].length !== b[1].length ? a[1].length > b[1].length : a[1] > b[1];
}

/**
 * Can `msg` come before the user stream's "stream" frame: the frame itself, or a replayed
 * message of the user stream (an id, no channel)? Herald sends those right after the
 * handshake, before anything else; any other frame first means none is coming.
 */
function isUserReplay(msg) {
    return !!msg && typeof msg === 'object' && (msg.op === 'stream' ||
        (msg.op === undefined && msg.channel === undefined && typeof msg.id === 'string'));
}

/** Index of the member whose user is `user` in `list`, or -1. */
function findMember(list, user) {
    for (var i = 0; i < list.length; i++) {
        if (list[i].user === user) {
            return i;
        }
    }
    return -1;
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
    /* Maps keyed by names from the server have no prototype: "constructor" is a name too. */
    this._handlers = Object.create(null);       /* event name -> [fn] */
    this._stateHandlers = [];                   /* [fn] */
    this._presenceHandlers = [];                /* [fn] */
    this._errorHandlers = [];                   /* [fn] */
    this._recoverHandlers = [];                 /* [fn] */
    /* channel -> {token, confirmed, members, last}; last is its stream position, or null */
    this._subs = Object.create(null);
    this._queue = [];                           /* [{msg, pending}] made while not open */
    this._pending = Object.create(null);        /* ref -> command awaiting its answer */
    this._nextRef = 1;          /* next ref on the current connection */
    this._ws = null;            /* current WebSocket, or null */
    this._timer = null;         /* pending reconnect timeout, or null */
    this._attempt = 0;          /* consecutive failures since the last stable connection */
    this._openedAt = 0;         /* Date.now() when the current socket opened, or 0 */
    this._closed = false;       /* close() was called */
    this._userLast = null;      /* last id of the user stream, or null */
    this._since = '';           /* the since the current socket was opened with */
    this._asUser = false;       /* the current socket was opened with a token */
    this._everOpened = false;   /* a socket has opened before: the next open is a reconnect */
    this._awaitStream = false;  /* reconnected as a user; the "stream" frame is still due */
    this.state = 'connecting';  /* 'connecting' | 'open' | 'closed' */
    /* Start on the next tick, so handlers added right after `new` see every state. */
    var self = this;
    Promise.resolve().then(function () {
        self._connect(null);
    });
}

Herald._backoff = backoff;
Herald.HeraldError = HeraldError;

/**
 * Call fn(data, event, meta) for every message named `event`, or for all of them with '*';
 * meta is {channel, from, id}.
 */
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
    this._handlers[event] = without(list, fn);
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
    this._stateHandlers = without(this._stateHandlers, fn);
    return this;
};

/** Call fn(kind, channel, member) for every presence 'join' and 'leave'. */
Herald.prototype.onPresence = function (fn) {
    if (typeof fn !== 'function') {
        throw new TypeError('Herald.onPresence: handler must be a function');
    }
    this._presenceHandlers.push(fn);
    return this;
};

/** Remove a handler added with onPresence(fn). */
Herald.prototype.offPresence = function (fn) {
    this._presenceHandlers = without(this._presenceHandlers, fn);
    return this;
};

/** Call fn(err) for every HeraldError that no promise can take (see the file header). */
Herald.prototype.onError = function (fn) {
    if (typeof fn !== 'function') {
        throw new TypeError('Herald.onError: handler must be a function');
    }
    this._errorHandlers.push(fn);
    return this;
};

/** Remove a handler added with onError(fn). */
Herald.prototype.offError = function (fn) {
    this._errorHandlers = without(this._errorHandlers, fn);
    return this;
};

/**
 * Call fn(stream, recovered) after each reconnect, once per stream: stream is null for the
 * user's own stream or a channel name; recovered false means messages may have been lost.
 */
Herald.prototype.onRecover = function (fn) {
    if (typeof fn !== 'function') {
        throw new TypeError('Herald.onRecover: handler must be a function');
    }
    this._recoverHandlers.push(fn);
    return this;
};

/** Remove a handler added with onRecover(fn). */
Herald.prototype.offRecover = function (fn) {
    this._recoverHandlers = without(this._recoverHandlers, fn);
    return this;
};

/**
 * Where the client stands, for debugging: {user, channels}, the last id seen in the user
 * stream (null if none) and in each remembered channel (null if none yet).
 */
Herald.prototype.position = function () {
    var channels = {};
    for (var channel in this._subs) {
        channels[channel] = this._subs[channel].last;
    }
    return { user: this._userLast, channels: channels };
};

/**
 * Subscribe to `channel`, with options.token (a channel token) if given, and remember it
 * for every later connection. Resolves {} or {members}; queued while not open.
 */
Herald.prototype.subscribe = function (channel, options) {
    if (typeof channel !== 'string' || channel === '') {
        return Promise.reject(new HeraldError('bad_channel', 'channel must be a string'));
    }
    if (this._closed) {
        return Promise.reject(new HeraldError('disconnected', 'the client was closed'));
    }
    var token = options && options.token;
    var entry = this._subs[channel];
    if (!entry) {
        entry = { token: token, confirmed: false, members: null, last: null };
        this._subs[channel] = entry;
    }
    var msg = { op: 'subscribe', channel: channel };
    if (token) {
        msg.token = token;
    }
    return this._request(msg, { channel: channel, entry: entry, token: token }, true);
};

/** Unsubscribe from `channel` and forget it. Resolves undefined; queued while not open. */
Herald.prototype.unsubscribe = function (channel) {
    if (typeof channel !== 'string' || channel === '') {
        return Promise.reject(new HeraldError('bad_channel', 'channel must be a string'));
    }
    delete this._subs[channel];
    return this._request({ op: 'unsubscribe', channel: channel }, { channel: channel }, true);
};

/**
 * Publish `data` into `channel` (a client_publish channel this connection subscribed to),
 * as options.event ('message'); options.echo false skips this connection.
 */
Herald.prototype.publish = function (channel, data, options) {
    if (typeof channel !== 'string' || channel === '') {
        return Promise.reject(new HeraldError('bad_channel', 'channel must be a string'));
    }
    options = options || {};
    var msg = {
        op: 'publish',
        channel: channel,
        event: options.event === undefined ? 'message' : options.event,
        data: data === undefined ? null : data,
    };
    if (options.echo === false) {
        msg.echo = false;
    }
    return this._request(msg, { channel: channel }, false);
};

/**
 * Call `method` in PHP with `data`; resolves the reply's data. Rejects with 'timeout' after
 * options.timeout ms (rpcTimeout; 0: no limit here) without an answer.
 */
Herald.prototype.rpc = function (method, data, options) {
    if (typeof method !== 'string' || method === '') {
        return Promise.reject(new HeraldError('bad_command', 'method must be a string'));
    }
    options = options || {};
    var timeout = options.timeout === undefined ? this.options.rpcTimeout : options.timeout;
    var msg = { op: 'rpc', method: method, data: data === undefined ? null : data };
    return this._request(msg, { method: method, timeout: timeout }, false);
};

/** The members [{user, info}] of a subscribed presence channel (a copy), else []. */
Herald.prototype.members = function (channel) {
    var entry = this._subs[channel];
    return entry && entry.members ? entry.members.map(member) : [];
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
    this._failPending('the client was closed');
    var queue = this._queue;
    this._queue = [];
    for (var i = 0; i < queue.length; i++) {
        this._settle(queue[i].pending, null,
            new HeraldError('disconnected', 'the client was closed'));
    }
    this._emitState('close', { code: 1000, reason: '', retryIn: null });
};

Herald.prototype._emitState = function (state, info) {
    callAll(this._stateHandlers, this, [state, info]);
};

/** Report `err` (a HeraldError) to the onError handlers, or console.warn without any. */
Herald.prototype._emitError = function (err) {
    if (this._errorHandlers.length === 0) {
        console.warn('herald: ' + err.code + ': ' + err.message);
        return;
    }
    callAll(this._errorHandlers, this, [err]);
};

/**
 * Send `msg` now if open, queue it if `queueable` and not closed, else reject with
 * 'disconnected'. `pending` describes the command (channel, entry, token, method,
 * timeout); its promise settles from the answer in _settle().
 */
Herald.prototype._request = function (msg, pending, queueable) {
    var self = this;
    return new Promise(function (resolve, reject) {
        pending.op = msg.op;
        pending.resolve = resolve;
        pending.reject = reject;
        if (self.state === 'open' && self._ws) {
            self._send(msg, pending);
        } else if (queueable && !self._closed) {
            self._queue.push({ msg: msg, pending: pending });
        } else {
            self._settle(pending, null, new HeraldError('disconnected',
                self._closed ? 'the client was closed' : 'not connected'));
        }
    });
};

/** Give `msg` the next ref, remember `pending` under it and send it on the open socket. */
Herald.prototype._send = function (msg, pending) {
    var self = this;
    var ref = this._nextRef++;
    msg.ref = ref;
    this._pending[ref] = pending;
    try {
        this._ws.send(JSON.stringify(msg));
    } catch (e) {
        delete this._pending[ref];
        this._settle(pending, null, new HeraldError('disconnected', 'send failed: ' + e));
        return;
    }
    if (pending.timeout > 0 && pending.timeout <= 0x7fffffff) {    /* setTimeout's range */
        pending.timer = setTimeout(function () {
            if (self._pending[ref] === pending) {
                delete self._pending[ref];
                self._settle(pending, null, new HeraldError('timeout',
                    'no answer to rpc ' + pending.method + ' within ' +
                    pending.timeout + ' ms'));
            }
        }, pending.timeout);
    }
};

/** Reject every command sent on the connection that just ended with 'disconnected'. */
Herald.prototype._failPending = function (why) {
    var pending = this._pending;
    this._pending = Object.create(null);
    for (var ref in pending) {
        this._settle(pending[ref], null, new HeraldError('disconnected', why));
    }
};

/**
 * The socket opened: subscribe the remembered channels again, each from its last id, send
 * the queue, report.
 */
Herald.prototype._opened = function () {
    this._openedAt = Date.now();
    this._nextRef = 1;
    this.state = 'open';
    this._awaitStream = this._everOpened && this._asUser;
    this._everOpened = true;
    for (var channel in this._subs) {
        var entry = this._subs[channel];
        if (entry.confirmed) {
            var msg = { op: 'subscribe', channel: channel };
            if (entry.token) {
                msg.token = entry.token;
            }
            if (entry.last !== null) {
                msg.since = entry.last;
            }
            this._send(msg, { op: 'subscribe', channel: channel, entry: entry,
                token: entry.token, resub: true, since: msg.since });
        }
    }
    var queue = this._queue;
    this._queue = [];
    for (var i = 0; i < queue.length; i++) {
        if (this._ws) {
            this._send(queue[i].msg, queue[i].pending);
        } else {
            this._queue.push(queue[i]);     /* an 'open' handler closed it: keep the rest */
        }
    }
    this._emitState('open', {});
};

/**
 * Settle a command from its answer `msg` (ok, reply or error) or a client-made `err`, and
 * keep the remembered channels in step: a refused subscribe forgets its channel unless an
 * earlier one is still in force on this connection.
 */
Herald.prototype._settle = function (pending, msg, err) {
    if (pending.timer) {
        clearTimeout(pending.timer);
    }
    if (!err && msg.op === 'error') {
        err = errorFrom(msg);
    }
    if (err && pending.channel !== undefined) {
        err.channel = pending.channel;
    }
    if (pending.op === 'subscribe') {
        this._settleSubscribe(pending, msg, err);
    } else if (err) {
        pending.reject(err);
    } else if (pending.op === 'rpc') {
        pending.resolve(msg.data === undefined ? null : msg.data);
    } else {
        pending.resolve(undefined);
    }
};

/**
 * The subscribe half of _settle(). A refusal forgets the channel unless an earlier
 * subscribe of it is still in force; a refused resubscription forgets it and goes to
 * onError; a resubscription cut short by a close is kept for the next connection. An ok
 * sets the channel's position, unless the channel was subscribed on this connection
 * already; for a resubscription it goes to onRecover, recovered only if Herald says so
 * for the since that was sent.
 */
Herald.prototype._settleSubscribe = function (pending, msg, err) {
    var entry = pending.entry;
    var current = this._subs[pending.channel] === entry;
    if (err && pending.resub) {
        if (err.code !== 'disconnected') {
            if (current) {
                delete this._subs[pending.channel];
            }
            this._emitError(err);
        }
        return;
    }
    if (err) {
        if (current && !entry.confirmed) {
            delete this._subs[pending.channel];
        }
        pending.reject(err);
        return;
    }
    var list = Array.isArray(msg.members) ? msg.members.map(member) : null;
    if (current) {
        var old = entry.members;
        /* Subscribed all along on this connection: what it saw is the exact position. */
        if (pending.resub || !entry.confirmed || entry.last === null) {
            entry.last = typeof msg.id === 'string' ? msg.id : null;
        }
        entry.confirmed = true;
        entry.token = pending.token;
        entry.members = list;
        if (pending.resub && old && list) {
            this._presenceDiff(pending.channel, old, list);
        }
        if (pending.resub) {
            this._emitRecover(pending.channel,
                pending.since !== undefined && msg.recovered === true);
        }
    }
    if (pending.resub) {
        return;
    }
    pending.resolve(list ? { members: list.map(member) } : {});
};

/** After a resubscription: report who left and who joined while the client was away. */
Herald.prototype._presenceDiff = function (channel, old, list) {
    var i;
    for (i = 0; i < old.length; i++) {
        if (findMember(list, old[i].user) < 0) {
            callAll(this._presenceHandlers, this, ['leave', channel, member(old[i])]);
        }
    }
    for (i = 0; i < list.length; i++) {
        if (findMember(old, list[i].user) < 0) {
            callAll(this._presenceHandlers, this, ['join', channel, member(list[i])]);
        }
    }
};

/** Tell the onRecover handlers whether `stream` (null: the user's) came back whole. */
Herald.prototype._emitRecover = function (stream, recovered) {
    callAll(this._recoverHandlers, this, [stream, recovered]);
};

/**
 * The {"op":"stream"} frame that ends the user stream's replay: take its position, and on
 * a reconnect tell onRecover. With since empty (no position known) nothing can have been
 * recovered, whatever Herald says.
 */
Herald.prototype._stream = function (msg) {
    if (msg.gap === true) {
        this._gap(msg);
        return;
    }
    if (typeof msg.id === 'string') {
        this._userLast = msg.id;
    }
    if (this._awaitStream) {
        this._awaitStream = false;
        this._emitRecover(null, this._since !== '' && msg.recovered === true);
    }
};

/**
 * {"op":"stream","gap":true}: while connected, messages of the user stream (or of "channel")
 * may have been lost (a cluster's Redis lost them): take the position Herald gives and tell
 * onRecover, recovered false, so the page reloads that state.
 */
Herald.prototype._gap = function (msg) {
    if (typeof msg.channel === 'string') {
        var entry = this._subs[msg.channel];
        if (!entry) {
            return;
        }
        if (typeof msg.id === 'string') {
            entry.last = msg.id;
        }
        this._emitRecover(msg.channel, false);
        return;
    }
    if (typeof msg.id === 'string') {
        this._userLast = msg.id;
    }
    this._emitRecover(null, false);
};

/**
 * Keep a message's id as its stream's position; false if it was delivered already (a
 * replay overlapping what was seen). Messages of channels that are not remembered, and
 * ids that are not "<epoch>:<offset>", are not tracked.
 */
Herald.prototype._track = function (msg) {
    if (!parseId(msg.id)) {
        return true;
    }
    if (typeof msg.channel === 'string') {
        var entry = this._subs[msg.channel];
        if (!entry) {
            return true;
        }
        if (!isAfter(msg.id, entry.last)) {
            return false;
        }
        entry.last = msg.id;
        return true;
    }
    if (!isAfter(msg.id, this._userLast)) {
        return false;
    }
    this._userLast = msg.id;
    return true;
};

/** A join or leave frame: update members() of a remembered channel, then tell onPresence. */
Herald.prototype._presence = function (msg) {
    var entry = typeof msg.channel === 'string' ? this._subs[msg.channel] : undefined;
    if (!entry || msg.user === undefined || msg.user === null) {
        return;     /* unsubscribed meanwhile, or malformed */
    }
    var m = member(msg);
    if (entry.members) {
        var i = findMember(entry.members, m.user);
        if (msg.op === 'join') {
            if (i < 0) {
                entry.members.push(m);
            } else {
                entry.members[i] = m;
            }
        } else if (i >= 0) {
            if (msg.info === undefined) {
                m.info = entry.members[i].info;
            }
            entry.members.splice(i, 1);
        }
    }
    callAll(this._presenceHandlers, this, [msg.op, msg.channel, member(m)]);
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

/**
 * Create the WebSocket for `token` (falsy: anonymous), asking for the user stream from its
 * last id, and wire its events.
 */
Herald.prototype._open = function (token) {
    var self = this;
    var url = this.url;
    var protocols;
    if (token && this.options.protocols) {
        protocols = ['herald', 'herald.token.' + token];
    } else if (token) {
        url += (url.indexOf('?') < 0 ? '?' : '&') + 'token=' + encodeURIComponent(token);
    }
    this._since = this._userLast || '';
    this._asUser = !!token;
    url += (url.indexOf('?') < 0 ? '?' : '&') + 'since=' + encodeURIComponent(this._since);
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
        self._opened();
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
        self._failPending('the connection closed before the answer');
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

/** An answer, presence or stream frame (it has an "op"): settle its command or apply it. */
Herald.prototype._operation = function (msg) {
    if (msg.op === 'join' || msg.op === 'leave') {
        this._presence(msg);
        return;
    }
    if (msg.op === 'stream') {
        this._stream(msg);
        return;
    }
    if (msg.op !== 'ok' && msg.op !== 'error' && msg.op !== 'reply') {
        console.warn('herald: ignoring a message with an unknown op:', msg.op);
        return;
    }
    if (msg.ref === undefined || msg.ref === null) {
        if (msg.op === 'error') {
            this._emitError(errorFrom(msg));
        }
        return;
    }
    var pending = this._pending[msg.ref];
    if (!pending) {
        return;     /* the answer to an rpc that timed out here */
    }
    delete this._pending[msg.ref];
    this._settle(pending, msg, null);
};

/**
 * Parse one frame: an "op" goes to _operation(); otherwise, unless its id was seen
 * already, call the handlers for its event, then the '*' handlers, with (data, event,
 * {channel, from}).
 */
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
    if (this._awaitStream && !isUserReplay(msg)) {
        this._awaitStream = false;      /* no history in this Herald: no stream frame */
        this._emitRecover(null, false);
    }
    if (msg && typeof msg === 'object' && typeof msg.op === 'string') {
        this._operation(msg);
        return;
    }
    if (!msg || typeof msg !== 'object' || typeof msg.event !== 'string') {
        console.warn('herald: ignoring a message without an "event" string');
        return;
    }
    if (msg.id !== undefined && !this._track(msg)) {
        return;
    }
    var data = msg.data === undefined ? null : msg.data;
    var meta = { channel: msg.channel, from: msg.from, id: msg.id };
    var list = (this._handlers[msg.event] || []).concat(this._handlers['*'] || []);
    for (var i = 0; i < list.length; i++) {
        safeCall(list[i], this, [data, msg.event, meta]);
    }
};

export { Herald, HeraldError };
export default Herald;
