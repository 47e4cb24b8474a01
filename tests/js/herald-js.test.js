/*
 * herald-js.test.js -- tests of php-client/js/herald.js under Node, with the `ws` package as the
 * WebSocket implementation (Node 18 and 20 have no global WebSocket).
 *
 * Usage:      node tests/js/herald-js.test.js [--module] [<ws_url> <token>]
 *                 --module: every test runs against the ES module php-client/js/herald.mjs
 *                 (import()) instead of herald.js (require()); herald.js is generated from it,
 *                 so the two must behave the same.
 *             node tests/js/herald-js.test.js
 *                 unit tests only, against a fake WebSocket: no server needed (connection and
 *                 backoff, then the commands: refs, queueing, resubscription, HeraldError,
 *                 rpc timeouts, presence; then history and recovery: ?since=, since on
 *                 resubscription, duplicate ids, onRecover, position()). Prints TAP
 *                 ("ok N - name" / "not ok N - name"), exits 1 on any failure.
 *             node tests/js/herald-js.test.js <ws_url> <token>
 *                 the unit tests, then live mode against a real Herald: two clients (token as
 *                 subprotocol, and as ?token=) print one JSON line per thing they see on stdout:
 *                   {"live":"token","client":"proto"}          getToken() was called
 *                   {"live":"state","client":"proto","state":"open",...}
 *                   {"live":"event","client":"proto","event":"x","data":{...}}
 *                 and keep reconnecting until stdin says "close" or reaches EOF; then both
 *                 clients close and the process exits 0.
 * Driven by:  tests/integration/60-herald-js.py, which publishes and restarts Herald. The
 *             channel, presence and RPC commands against a real Herald are driven through
 *             tests/js/herald-js-driver.js by tests/integration/62-herald-js-channels.py, and
 *             recovery by tests/integration/64-herald-js-recovery.py.
 * Needs:      `npm ci --prefix tests/js` (installs ws from tests/js/package-lock.json).
 */
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const readline = require('node:readline');
const HERALD_JS = path.join(__dirname, '..', '..', 'php-client', 'js', 'herald.js');
const HERALD_MJS = path.join(__dirname, '..', '..', 'php-client', 'js', 'herald.mjs');
const MODULE = process.argv[2] === '--module';
const ARGS = process.argv.slice(MODULE ? 3 : 2);
let Herald = null;      /* the class under test, from herald.js or herald.mjs: see main() */

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* A stand-in for the browser WebSocket: records what Herald asked for, lets a test fire events. */
class FakeWebSocket {
    constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.closedWith = null;
        this.sent = [];             /* commands Herald sent, parsed */
        FakeWebSocket.instances.push(this);
    }

    close(code) {
        this.closedWith = code;
    }

    send(text) {
        this.sent.push(JSON.parse(text));
    }

    /* Deliver a server frame given as an object. */
    answer(obj) {
        this.message(JSON.stringify(obj));
    }

    open() {
        this.onopen && this.onopen({});
    }

    message(data) {
        this.onmessage && this.onmessage({ data: data });
    }

    drop(code) {
        this.onclose && this.onclose({ code: code, reason: '' });
    }
}
FakeWebSocket.instances = [];

/* Return the newest FakeWebSocket once there are `n`, waiting up to `ms`. */
async function nthSocket(n, ms = 1000) {
    const end = Date.now() + ms;
    while (FakeWebSocket.instances.length < n) {
        if (Date.now() > end) {
            throw new Error(`expected ${n} connection attempts, saw ${FakeWebSocket.instances.length}`);
        }
        await sleep(2);
    }
    return FakeWebSocket.instances[n - 1];
}

/* Let pending promise callbacks run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

/* Settle `promise` into ['ok', value] or ['err', error] without throwing. */
const outcome = (promise) => promise.then((v) => ['ok', v], (e) => ['err', e]);

/* A Herald on a FakeWebSocket that is already open; returns [h, ws]. */
async function openClient(options = {}) {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', Object.assign({ WebSocket: FakeWebSocket, token: 't',
        backoffBase: 1, backoffMax: 2 }, options));
    const ws = await nthSocket(1);
    ws.open();
    return [h, ws];
}

/* Assert `err` is a HeraldError with `code` (and `channel` when given). */
function assertHeraldError(err, code, channel) {
    assert.ok(err instanceof Herald.HeraldError, `not a HeraldError: ${err && err.stack}`);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'HeraldError');
    assert.equal(err.code, code, `code of ${err.message}`);
    assert.equal(typeof err.message, 'string');
    if (channel !== undefined) {
        assert.equal(err.channel, channel);
    }
}

/* Run fn with console[method] captured; return the captured argument lists. */
async function capture(method, fn) {
    const saved = console[method];
    const calls = [];
    console[method] = (...args) => calls.push(args);
    try {
        await fn();
    } finally {
        console[method] = saved;
    }
    return calls;
}

const unitTests = [];
const test = (name, fn) => unitTests.push({ name, fn });

test('as a classic script it defines the global Herald', () => {
    const fs = require('node:fs');
    const vm = require('node:vm');
    const src = fs.readFileSync(HERALD_JS, 'utf8');
    const plain = vm.createContext({});
    vm.runInContext(src, plain);
    assert.equal(typeof plain.Herald, 'function');
    assert.equal(typeof plain.Herald.HeraldError, 'function');
    assert.equal(plain.HeraldError, undefined, 'no second global');
    const browserish = vm.createContext({});
    browserish.self = browserish;
    vm.runInContext(src, browserish);
    assert.equal(typeof browserish.Herald._backoff, 'function');
});

test('the client uses no syntax newer than ES5 (plus Promise), for old browsers', () => {
    const fs = require('node:fs');
    const file = MODULE ? HERALD_MJS : HERALD_JS;
    const exportBlock = 'export { Herald, HeraldError };\nexport default Herald;\n';
    let src = fs.readFileSync(file, 'utf8');
    if (MODULE) {
        assert.ok(src.endsWith(exportBlock), 'herald.mjs ends with its export block');
        src = src.slice(0, -exportBlock.length);
    }
    const code = src
        .replace(/\/\*[\s\S]*?\*\//g, '')         /* block comments */
        .replace(/'(?:[^'\\\n]|\\.)*'/g, "''")     /* strings */
        .replace(/"(?:[^"\\\n]|\\.)*"/g, '""')
        .replace(/\/\/.*$/gm, '');                /* line comments */
    for (const [what, re] of [['arrow function', /=>/], ['let', /\blet\b/],
        ['const', /\bconst\b/], ['template literal', /`/], ['class', /\bclass\b/],
        ['async/await', /\b(async|await)\b/], ['spread', /\.\.\./],
        ['ES module', /^\s*(import|export)\b/m]]) {
        assert.ok(!re.test(code), `${path.basename(file)} uses ${what}`);
    }
});

test('backoff ceiling doubles from 500 ms and stops at 30 s', () => {
    const max = () => 1 - Number.EPSILON;
    const got = [0, 1, 2, 3, 4, 5, 6, 7, 20, 1000].map((a) => Herald._backoff(a, 500, 30000, max));
    assert.deepEqual(got, [499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999, 29999]);
});

test('backoff defaults are base 500 ms and max 30 s', () => {
    assert.equal(Herald._backoff(0, undefined, undefined, () => 0.5), 250);
    assert.equal(Herald._backoff(10, undefined, undefined, () => 0.5), 15000);
});

test('backoff has full jitter: anywhere from 0 up to the ceiling', () => {
    assert.equal(Herald._backoff(5, 500, 30000, () => 0), 0);
    for (let attempt = 0; attempt < 12; attempt++) {
        const ceiling = Math.min(30000, 500 * 2 ** attempt);
        for (let i = 0; i < 200; i++) {
            const d = Herald._backoff(attempt);
            assert.ok(Number.isInteger(d) && d >= 0 && d < ceiling, `attempt ${attempt}: ${d}`);
        }
    }
});

test('backoff delays grow on average with the attempt number', () => {
    const mean = (attempt) => {
        let sum = 0;
        for (let i = 0; i < 2000; i++) {
            sum += Herald._backoff(attempt);
        }
        return sum / 2000;
    };
    const means = [0, 1, 2, 3, 4, 5, 6].map(mean);
    for (let i = 1; i < means.length; i++) {
        assert.ok(means[i] > means[i - 1] * 1.5, `means ${means.join(', ')}`);
    }
    assert.ok(means[6] > 12000 && means[6] < 18000, `mean at the cap ${means[6]}`);
});

test('the token goes in the subprotocol by default, never in the URL', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 'a.b.c' });
    const ws = await nthSocket(1);
    assert.equal(ws.url, 'ws://h.test/ws?since=', 'only since, empty on the first connection');
    assert.deepEqual(ws.protocols, ['herald', 'herald.token.a.b.c']);
    h.close();
});

test('protocols: false puts the token in the query string', async () => {
    FakeWebSocket.instances = [];
    const h1 = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 'a.b-c_d',
        protocols: false });
    const h2 = new Herald('ws://h.test/ws?x=1', { WebSocket: FakeWebSocket, token: 't',
        protocols: false });
    assert.equal((await nthSocket(1)).url, 'ws://h.test/ws?token=a.b-c_d&since=');
    assert.equal((await nthSocket(2)).url, 'ws://h.test/ws?x=1&token=t&since=');
    assert.equal(FakeWebSocket.instances[0].protocols, undefined);
    h1.close();
    h2.close();
});

test('without a token the client connects anonymously', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket });
    const ws = await nthSocket(1);
    assert.equal(ws.url, 'ws://h.test/ws?since=', 'since too: Herald ignores it without a user');
    assert.equal(ws.protocols, undefined);
    h.close();
});

test('on(event) and on("*") get (data, event); off() removes a handler', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't' });
    const ws = await nthSocket(1);
    ws.open();
    const seen = [];
    const shipped = (data, event) => seen.push(['shipped', event, data]);
    h.on('order.shipped', shipped);
    h.on('*', (data, event) => seen.push(['*', event, data]));
    ws.message('{"event":"order.shipped","data":{"id":7}}');
    ws.message('{"event":"other"}');
    h.off('order.shipped', shipped);
    ws.message('{"event":"order.shipped","data":[1]}');
    assert.deepEqual(seen, [
        ['shipped', 'order.shipped', { id: 7 }],
        ['*', 'order.shipped', { id: 7 }],
        ['*', 'other', null],
        ['*', 'order.shipped', [1]],
    ]);
    h.close();
});

test('an unparseable message is ignored with console.warn', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't' });
    const ws = await nthSocket(1);
    ws.open();
    const seen = [];
    h.on('*', (data, event) => seen.push(event));
    const warnings = await capture('warn', async () => {
        ws.message('not json');
        ws.message('{"data":1}');
        ws.message('[1,2]');
        ws.message(Buffer.from('{"event":"bin"}'));
        ws.message('{"event":"fine"}');
    });
    assert.deepEqual(seen, ['fine']);
    assert.equal(warnings.length, 4);
    assert.ok(warnings.every((w) => String(w[0]).startsWith('herald: ')));
    h.close();
});

test('a handler that throws does not stop the other handlers', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't' });
    const ws = await nthSocket(1);
    const seen = [];
    h.on('e', () => { throw new Error('boom'); });
    h.on('e', () => seen.push('second'));
    const errors = await capture('error', async () => ws.message('{"event":"e"}'));
    assert.deepEqual(seen, ['second']);
    assert.equal(errors.length, 1);
    h.close();
});

test('onState reports connecting, open, close with retryIn, and reconnects by itself', async () => {
    FakeWebSocket.instances = [];
    let tokens = 0;
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket,
        getToken: async () => `tok${++tokens}`, backoffBase: 20 });
    const states = [];
    h.onState((state, info) => states.push([state, info]));
    const ws1 = await nthSocket(1);
    ws1.open();
    assert.equal(h.state, 'open');
    ws1.drop(1001);
    const ws2 = await nthSocket(2);
    assert.deepEqual(ws2.protocols, ['herald', 'herald.token.tok2'], 'getToken called again');
    assert.deepEqual(states.map((s) => s[0]), ['connecting', 'open', 'close', 'connecting']);
    assert.equal(states[0][1].retry, null);
    assert.equal(states[3][1].retry, 0);
    assert.equal(states[2][1].code, 1001);
    assert.ok(states[2][1].retryIn >= 0 && states[2][1].retryIn < 20);
    h.close();
});

test('close() closes with 1000 and stops reconnecting', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't',
        backoffBase: 5 });
    const states = [];
    h.onState((state, info) => states.push([state, info.retryIn]));
    const ws = await nthSocket(1);
    ws.open();
    h.close();
    assert.equal(ws.closedWith, 1000);
    assert.equal(h.state, 'closed');
    ws.drop(1000);
    await sleep(100);
    assert.equal(FakeWebSocket.instances.length, 1);
    assert.deepEqual(states, [['connecting', undefined], ['open', undefined], ['close', null]]);
});

test('close() right after new Herald() opens nothing', async () => {
    FakeWebSocket.instances = [];
    let calls = 0;
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket,
        getToken: () => ++calls });
    h.close();
    await sleep(50);
    assert.equal(FakeWebSocket.instances.length, 0);
    assert.equal(calls, 0);
});

test('close() during a pending reconnect cancels it', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't',
        backoffBase: 50 });
    (await nthSocket(1)).drop(1006);
    h.close();
    await sleep(150);
    assert.equal(FakeWebSocket.instances.length, 1);
});

test('failures back off with a growing attempt count; a stable connection resets it', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't',
        backoffBase: 1, backoffMax: 4, stableAfter: 60 });
    const attempts = [];
    h.onState((state, info) => state === 'connecting' && attempts.push(info.retry));
    (await nthSocket(1)).drop(1006);
    (await nthSocket(2)).drop(1006);
    (await nthSocket(3)).drop(1006);
    const ws4 = await nthSocket(4);
    ws4.open();
    ws4.drop(1006);               /* open but not stable: the count goes on */
    const ws5 = await nthSocket(5);
    ws5.open();
    await sleep(80);
    ws5.drop(1001);               /* stayed open past stableAfter: back to attempt 0 */
    await nthSocket(6);
    assert.deepEqual(attempts, [null, 0, 1, 2, 3, 0]);
    h.close();
});

test('a getToken() failure is reported as an error and retried', async () => {
    FakeWebSocket.instances = [];
    let calls = 0;
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, backoffBase: 10,
        getToken: () => {
            if (++calls === 1) {
                throw new Error('token endpoint down');
            }
            return Promise.resolve('good');
        } });
    const states = [];
    h.onState((state) => states.push(state));
    const ws = await nthSocket(1);
    assert.deepEqual(ws.protocols, ['herald', 'herald.token.good']);
    assert.deepEqual(states.slice(0, 4), ['connecting', 'error', 'close', 'connecting']);
    assert.equal(calls, 2);
    h.close();
});

test('a bad url or a missing WebSocket is refused at once', () => {
    assert.throws(() => new Herald('http://h.test/ws', { WebSocket: FakeWebSocket }), TypeError);
    assert.throws(() => new Herald('ws://h.test/ws', {}), /no WebSocket implementation/);
});

/* -- channels, presence, RPC (docs/protocol.md section 1; spec issue 4) -- */

test('HeraldError is an Error with name, code and message', () => {
    const e = new Herald.HeraldError('forbidden', 'not allowed');
    assertHeraldError(e, 'forbidden');
    assert.equal(e.message, 'not allowed');
    assert.equal(String(e), 'HeraldError: not allowed');
    assert.ok(/HeraldError/.test(e.stack));
    assert.equal(new Herald.HeraldError('timeout').message, 'timeout');
});

test('on() handlers get meta {channel, from, id}; frames with an op never reach on()', async () => {
    const [h, ws] = await openClient();
    const seen = [];
    h.on('*', (data, event, meta) => seen.push([event, data, meta]));
    ws.answer({ event: 'a', data: 1 });
    ws.answer({ channel: 'team:1', event: 'deploy', data: { v: 3 } });
    ws.answer({ channel: 'chat:1', event: 'chat', data: 'hi', from: '42' });
    ws.answer({ id: 'e1:5', event: 'order.shipped', data: { id: 7 } });
    ws.answer({ op: 'ok', ref: 99 });
    ws.answer({ op: 'join', channel: 'room:1', user: '7', event: 'x' });
    assert.deepEqual(seen, [
        ['a', 1, { channel: undefined, from: undefined, id: undefined }],
        ['deploy', { v: 3 }, { channel: 'team:1', from: undefined, id: undefined }],
        ['chat', 'hi', { channel: 'chat:1', from: '42', id: undefined }],
        ['order.shipped', { id: 7 }, { channel: undefined, from: undefined, id: 'e1:5' }],
    ]);
    h.close();
});

test('event names like "constructor" and "__proto__" are plain names', async () => {
    const [h, ws] = await openClient();
    const seen = [];
    h.on('constructor', (d, e) => seen.push(e));
    h.on('*', (d, e) => seen.push('*' + e));
    ws.answer({ event: 'constructor' });
    ws.answer({ event: 'toString' });
    ws.answer({ event: '__proto__' });
    assert.deepEqual(seen, ['constructor', '*constructor', '*toString', '*__proto__']);
    h.close();
});

test('subscribe sends {op, channel, ref} with refs from 1 and resolves {} on ok', async () => {
    const [h, ws] = await openClient();
    const p1 = h.subscribe('team:12');
    const p2 = h.subscribe('doc:7', { token: 'chan.jwt' });
    assert.deepEqual(ws.sent, [
        { op: 'subscribe', channel: 'team:12', ref: 1 },
        { op: 'subscribe', channel: 'doc:7', token: 'chan.jwt', ref: 2 },
    ]);
    ws.answer({ op: 'ok', ref: 2 });
    ws.answer({ op: 'ok', ref: 1 });
    assert.deepEqual(await p1, {});
    assert.deepEqual(await p2, {});
    assert.deepEqual(h.members('team:12'), []);
    h.close();
});

test('subscribe to a presence channel resolves {members}; members() is a copy', async () => {
    const [h, ws] = await openClient();
    const p = h.subscribe('room:1');
    ws.answer({ op: 'ok', ref: 1, members: [{ user: '42', info: { name: 'Ann' } }, { user: 7 }] });
    const got = await p;
    const want = [{ user: '42', info: { name: 'Ann' } }, { user: '7', info: null }];
    assert.deepEqual(got, { members: want });
    assert.deepEqual(h.members('room:1'), want);
    h.members('room:1').pop();
    got.members.pop();
    assert.deepEqual(h.members('room:1'), want, 'callers cannot change the kept list');
    assert.deepEqual(h.members('room:2'), []);
    h.close();
});

test('a refused subscribe rejects a HeraldError with its channel, and is forgotten', async () => {
    const [h, ws] = await openClient();
    const p = outcome(h.subscribe('secret:1'));
    ws.answer({ op: 'error', ref: 1, code: 'forbidden',
        message: 'not allowed to subscribe to secret:1' });
    const [kind, err] = await p;
    assert.equal(kind, 'err');
    assertHeraldError(err, 'forbidden', 'secret:1');
    assert.equal(err.message, 'not allowed to subscribe to secret:1');
    ws.drop(1006);
    const ws2 = await nthSocket(2);
    ws2.open();
    assert.deepEqual(ws2.sent, [], 'a refused channel is not subscribed again');
    h.close();
});

test('subscribe/unsubscribe while connecting are queued, sent in order on open', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't' });
    const states = [];
    h.onState((state) => states.push([state, FakeWebSocket.instances.length &&
        FakeWebSocket.instances[0].sent.length]));
    const a = h.subscribe('a');
    const b = h.subscribe('b', { token: 'tb' });
    const ua = h.unsubscribe('a');
    const ws = await nthSocket(1);
    assert.deepEqual(ws.sent, []);
    ws.open();
    assert.deepEqual(ws.sent, [
        { op: 'subscribe', channel: 'a', ref: 1 },
        { op: 'subscribe', channel: 'b', token: 'tb', ref: 2 },
        { op: 'unsubscribe', channel: 'a', ref: 3 },
    ]);
    assert.deepEqual(states[states.length - 1], ['open', 3], "sent before onState('open')");
    ws.answer({ op: 'ok', ref: 1 });
    ws.answer({ op: 'ok', ref: 2 });
    ws.answer({ op: 'ok', ref: 3 });
    assert.deepEqual(await a, {});
    assert.deepEqual(await b, {});
    assert.equal(await ua, undefined);
    ws.drop(1006);
    const ws2 = await nthSocket(2);
    ws2.open();
    assert.deepEqual(ws2.sent, [{ op: 'subscribe', channel: 'b', token: 'tb', ref: 1 }],
        'only b is remembered: a was unsubscribed');
    h.close();
});

test('publish and rpc while not open reject at once with "disconnected"', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't' });
    const [k1, e1] = await outcome(h.publish('chat:1', 'hi'));
    const [k2, e2] = await outcome(h.rpc('tasks.list'));
    assert.equal(k1, 'err');
    assertHeraldError(e1, 'disconnected', 'chat:1');
    assert.equal(k2, 'err');
    assertHeraldError(e2, 'disconnected');
    const ws = await nthSocket(1);
    ws.open();
    assert.deepEqual(ws.sent, [], 'nothing of them was queued');
    h.close();
});

test('commands awaiting an answer reject with "disconnected" when the socket closes', async () => {
    const [h, ws] = await openClient();
    const results = [h.subscribe('a'), h.unsubscribe('b'), h.publish('c', 1), h.rpc('m')]
        .map(outcome);
    ws.drop(1006);
    for (const r of await Promise.all(results)) {
        assert.equal(r[0], 'err');
        assertHeraldError(r[1], 'disconnected');
    }
    const ws2 = await nthSocket(2);
    ws2.open();
    assert.deepEqual(ws2.sent, [], 'a subscribe that was never answered is not remembered');
    ws.answer({ op: 'ok', ref: 1 });     /* a stray answer on the dead socket changes nothing */
    h.close();
});

test('close() rejects queued and outstanding commands; later commands reject too', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 't' });
    const queued = outcome(h.subscribe('a'));
    h.close();
    const [k, e] = await queued;
    assert.equal(k, 'err');
    assertHeraldError(e, 'disconnected', 'a');
    for (const p of [h.subscribe('b'), h.unsubscribe('b'), h.publish('b', 1), h.rpc('m')]) {
        const [k2, e2] = await outcome(p);
        assert.equal(k2, 'err');
        assertHeraldError(e2, 'disconnected');
    }
    const [h2, ws] = await openClient();
    const sent = outcome(h2.rpc('slow'));
    h2.close();
    const [k3, e3] = await sent;
    assert.equal(k3, 'err');
    assertHeraldError(e3, 'disconnected');
    assert.equal(ws.closedWith, 1000);
});

test('after a reconnect every remembered channel is subscribed again, refs from 1', async () => {
    const [h, ws] = await openClient();
    const subs = [h.subscribe('pub'), h.subscribe('doc:7', { token: 'chan.jwt' }),
        h.subscribe('gone')];
    ws.answer({ op: 'ok', ref: 1 });
    ws.answer({ op: 'ok', ref: 2 });
    ws.answer({ op: 'ok', ref: 3 });
    await Promise.all(subs);
    const un = h.unsubscribe('gone');
    ws.answer({ op: 'ok', ref: 4 });
    await un;
    ws.drop(1001);
    const ws2 = await nthSocket(2);
    const queued = h.subscribe('late');
    ws2.open();
    assert.deepEqual(ws2.sent, [
        { op: 'subscribe', channel: 'pub', ref: 1 },
        { op: 'subscribe', channel: 'doc:7', token: 'chan.jwt', ref: 2 },
        { op: 'subscribe', channel: 'late', ref: 3 },
    ]);
    ws2.answer({ op: 'ok', ref: 3 });
    assert.deepEqual(await queued, {});
    ws2.answer({ op: 'ok', ref: 1 });
    ws2.answer({ op: 'ok', ref: 2 });
    ws2.drop(1006);              /* and again: all three are remembered */
    const ws3 = await nthSocket(3);
    ws3.open();
    assert.deepEqual(ws3.sent.map((m) => m.channel), ['pub', 'doc:7', 'late']);
    h.close();
});

test('a resubscription cut short by a close is tried again on the next connection', async () => {
    const [h, ws] = await openClient();
    const p = h.subscribe('a');
    ws.answer({ op: 'ok', ref: 1 });
    await p;
    ws.drop(1006);
    const ws2 = await nthSocket(2);
    ws2.open();
    assert.deepEqual(ws2.sent, [{ op: 'subscribe', channel: 'a', ref: 1 }]);
    const errors = [];
    h.onError((e) => errors.push(e));
    ws2.drop(1006);
    const ws3 = await nthSocket(3);
    ws3.open();
    assert.deepEqual(ws3.sent, [{ op: 'subscribe', channel: 'a', ref: 1 }]);
    assert.deepEqual(errors, []);
    h.close();
});

test('a refused resubscription goes to onError with its channel and is forgotten', async () => {
    const [h, ws] = await openClient();
    const p = h.subscribe('doc:7', { token: 'old.jwt' });
    ws.answer({ op: 'ok', ref: 1 });
    await p;
    const errors = [];
    h.onError((e) => errors.push(e));
    ws.drop(1006);
    const ws2 = await nthSocket(2);
    ws2.open();
    ws2.answer({ op: 'error', ref: 1, code: 'bad_token', message: 'expired' });
    assert.equal(errors.length, 1);
    assertHeraldError(errors[0], 'bad_token', 'doc:7');
    ws2.drop(1006);
    const ws3 = await nthSocket(3);
    ws3.open();
    assert.deepEqual(ws3.sent, []);
    h.close();
});

test('a second subscribe that is refused keeps the first one in force', async () => {
    const [h, ws] = await openClient();
    const p = h.subscribe('doc:7', { token: 'good' });
    ws.answer({ op: 'ok', ref: 1 });
    await p;
    const again = outcome(h.subscribe('doc:7', { token: 'bad' }));
    ws.answer({ op: 'error', ref: 2, code: 'bad_token', message: 'bad' });
    assertHeraldError((await again)[1], 'bad_token', 'doc:7');
    ws.drop(1006);
    const ws2 = await nthSocket(2);
    ws2.open();
    assert.deepEqual(ws2.sent, [{ op: 'subscribe', channel: 'doc:7', token: 'good', ref: 1 }]);
    h.close();
});

test('unsubscribe sends {op, channel, ref}, resolves undefined, rejects on error', async () => {
    const [h, ws] = await openClient();
    const p = h.unsubscribe('team:12');
    const bad = outcome(h.unsubscribe('no good'));
    assert.deepEqual(ws.sent, [{ op: 'unsubscribe', channel: 'team:12', ref: 1 },
        { op: 'unsubscribe', channel: 'no good', ref: 2 }]);
    ws.answer({ op: 'ok', ref: 1 });
    ws.answer({ op: 'error', ref: 2, code: 'bad_channel', message: 'bad name' });
    assert.equal(await p, undefined);
    assertHeraldError((await bad)[1], 'bad_channel', 'no good');
    h.close();
});

test('publish sends event "message" and data null by default, echo only when false', async () => {
    const [h, ws] = await openClient();
    const p1 = h.publish('chat:1', { text: 'hi' });
    const p2 = h.publish('chat:1', undefined, { event: 'typing', echo: false });
    const p3 = outcome(h.publish('chat:2', 1, { echo: true }));
    assert.deepEqual(ws.sent, [
        { op: 'publish', channel: 'chat:1', event: 'message', data: { text: 'hi' }, ref: 1 },
        { op: 'publish', channel: 'chat:1', event: 'typing', data: null, echo: false, ref: 2 },
        { op: 'publish', channel: 'chat:2', event: 'message', data: 1, ref: 3 },
    ]);
    ws.answer({ op: 'ok', ref: 1 });
    ws.answer({ op: 'ok', ref: 2 });
    ws.answer({ op: 'error', ref: 3, code: 'not_subscribed', message: 'subscribe first' });
    assert.equal(await p1, undefined);
    assert.equal(await p2, undefined);
    const [k, e] = await p3;
    assert.equal(k, 'err');
    assertHeraldError(e, 'not_subscribed', 'chat:2');
    assert.equal(e.message, 'subscribe first');
    h.close();
});

test('rpc with timeout 0 waits for Herald\'s own answer', async () => {
    const [h, ws] = await openClient({ rpcTimeout: 0 });
    const p1 = outcome(h.rpc('slow'));
    const p2 = outcome(h.rpc('slow', null, { timeout: 0 }));
    await sleep(30);
    ws.answer({ op: 'error', ref: 1, code: 'rpc_timeout', message: 'php-fpm was too slow' });
    ws.answer({ op: 'reply', ref: 2, data: 'done' });
    assertHeraldError((await p1)[1], 'rpc_timeout');
    assert.deepEqual(await p2, ['ok', 'done']);
    h.close();
});

test('rpc resolves the reply data and rejects PHP errors with their code and message', async () => {
    const [h, ws] = await openClient();
    const p1 = h.rpc('tasks.list', { done: false });
    const p2 = outcome(h.rpc('tasks.add'));
    const p3 = h.rpc('noop', 0);
    assert.deepEqual(ws.sent, [
        { op: 'rpc', method: 'tasks.list', data: { done: false }, ref: 1 },
        { op: 'rpc', method: 'tasks.add', data: null, ref: 2 },
        { op: 'rpc', method: 'noop', data: 0, ref: 3 },
    ]);
    ws.answer({ op: 'reply', ref: 2 + 1 });
    ws.answer({ op: 'error', ref: 2, code: 'title_missing', message: 'a task needs a title' });
    ws.answer({ op: 'reply', ref: 1, data: [{ id: 1, title: 'Call Bob' }] });
    assert.deepEqual(await p1, [{ id: 1, title: 'Call Bob' }]);
    const [k, e] = await p2;
    assert.equal(k, 'err');
    assertHeraldError(e, 'title_missing');
    assert.equal(e.message, 'a task needs a title');
    assert.equal(e.channel, undefined);
    assert.equal(await p3, null);
    h.close();
});

test('rpc rejects with "timeout" after its timeout; the late answer is dropped', async () => {
    const [h, ws] = await openClient({ rpcTimeout: 30 });
    const errors = [];
    h.onError((e) => errors.push(e));
    const t0 = Date.now();
    const [k, e] = await outcome(h.rpc('slow', null, { timeout: 60 }));
    const took = Date.now() - t0;
    assert.equal(k, 'err');
    assertHeraldError(e, 'timeout');
    assert.ok(took >= 55 && took < 1000, `took ${took} ms`);
    const [k2, e2] = await outcome(h.rpc('slow2'));
    assert.equal(k2, 'err');
    assertHeraldError(e2, 'timeout');
    ws.answer({ op: 'reply', ref: 1, data: 'late' });
    ws.answer({ op: 'error', ref: 2, code: 'rpc_timeout', message: 'late' });
    const p = h.rpc('fast');
    ws.answer({ op: 'reply', ref: 3, data: 'in time' });
    assert.equal(await p, 'in time');
    assert.deepEqual(errors, []);
    h.close();
});

test('join and leave update members() as a set and reach onPresence', async () => {
    const [h, ws] = await openClient();
    const events = [];
    const fn = (kind, channel, member) => events.push([kind, channel, member]);
    h.onPresence(fn);
    const p = h.subscribe('room:1');
    ws.answer({ op: 'ok', ref: 1, members: [{ user: '42', info: { name: 'Ann' } }] });
    await p;
    ws.answer({ op: 'join', channel: 'room:1', user: '7', info: { name: 'Bob' } });
    ws.answer({ op: 'join', channel: 'room:1', user: '7', info: { name: 'Bobby' } });
    ws.answer({ op: 'join', channel: 'room:1', user: 9 });
    assert.deepEqual(h.members('room:1'), [{ user: '42', info: { name: 'Ann' } },
        { user: '7', info: { name: 'Bobby' } }, { user: '9', info: null }]);
    ws.answer({ op: 'leave', channel: 'room:1', user: '7' });
    ws.answer({ op: 'leave', channel: 'room:1', user: 'nobody' });
    assert.deepEqual(h.members('room:1'), [{ user: '42', info: { name: 'Ann' } },
        { user: '9', info: null }]);
    assert.deepEqual(events, [
        ['join', 'room:1', { user: '7', info: { name: 'Bob' } }],
        ['join', 'room:1', { user: '7', info: { name: 'Bobby' } }],
        ['join', 'room:1', { user: '9', info: null }],
        ['leave', 'room:1', { user: '7', info: { name: 'Bobby' } }],
        ['leave', 'room:1', { user: 'nobody', info: null }],
    ]);
    h.offPresence(fn);
    ws.answer({ op: 'leave', channel: 'room:1', user: '9' });
    assert.equal(events.length, 5);
    assert.deepEqual(h.members('room:1'), [{ user: '42', info: { name: 'Ann' } }]);
    h.close();
});

test('presence for a channel that was unsubscribed is ignored', async () => {
    const [h, ws] = await openClient();
    const events = [];
    h.onPresence((kind, channel) => events.push([kind, channel]));
    const p = h.subscribe('room:1');
    ws.answer({ op: 'ok', ref: 1, members: [] });
    await p;
    const un = outcome(h.unsubscribe('room:1'));
    ws.answer({ op: 'join', channel: 'room:1', user: '7' });
    ws.answer({ op: 'join', channel: 'room:2', user: '7' });
    assert.deepEqual(events, []);
    assert.deepEqual(h.members('room:1'), []);
    h.close();
    assertHeraldError((await un)[1], 'disconnected', 'room:1');
});

test('a resubscription reports members that left or joined while away', async () => {
    const [h, ws] = await openClient();
    const p = h.subscribe('room:1');
    ws.answer({ op: 'ok', ref: 1, members: [{ user: '1' }, { user: '2' }, { user: '3' }] });
    await p;
    const events = [];
    h.onPresence((kind, channel, member) => events.push([kind, channel, member.user]));
    ws.drop(1006);
    assert.deepEqual(h.members('room:1').map((m) => m.user), ['1', '2', '3'],
        'the last list is kept while disconnected');
    const ws2 = await nthSocket(2);
    ws2.open();
    ws2.answer({ op: 'ok', ref: 1, members: [{ user: '1' }, { user: '3' }, { user: '4' }] });
    assert.deepEqual(events, [['leave', 'room:1', '2'], ['join', 'room:1', '4']]);
    assert.deepEqual(h.members('room:1').map((m) => m.user), ['1', '3', '4']);
    h.close();
});

test('an error without a ref goes to onError, or console.warn with no handler', async () => {
    const [h, ws] = await openClient();
    const warnings = await capture('warn', async () => {
        ws.answer({ op: 'error', code: 'bad_json', message: 'not a JSON object' });
    });
    assert.equal(warnings.length, 1);
    assert.ok(String(warnings[0][0]).startsWith('herald: bad_json'));
    const errors = [];
    const fn = (e) => errors.push(e);
    h.onError(fn);
    ws.answer({ op: 'error', code: 'bad_command', message: 'op missing' });
    assert.equal(errors.length, 1);
    assertHeraldError(errors[0], 'bad_command');
    assert.equal(errors[0].message, 'op missing');
    h.offError(fn);
    await capture('warn', async () => ws.answer({ op: 'error', code: 'x' }));
    assert.equal(errors.length, 1);
    h.close();
});

test('unknown ops and answers to unknown refs are ignored', async () => {
    const [h, ws] = await openClient();
    const errors = [];
    h.onError((e) => errors.push(e));
    const warnings = await capture('warn', async () => {
        ws.answer({ op: 'mystery', ref: 1 });
        ws.answer({ op: 'ok', ref: 77 });
        ws.answer({ op: 'error', ref: 'x', code: 'forbidden' });
    });
    assert.equal(warnings.length, 1);
    assert.deepEqual(errors, []);
    const p = h.subscribe('a');
    ws.answer({ op: 'ok', ref: 1 });
    assert.deepEqual(await p, {});
    h.close();
});

test('a channel or method that is not a string is refused without a round trip', async () => {
    const [h, ws] = await openClient();
    for (const [p, code] of [[h.subscribe(12), 'bad_channel'], [h.subscribe(''), 'bad_channel'],
        [h.unsubscribe(), 'bad_channel'], [h.publish(null, 1), 'bad_channel'],
        [h.rpc(5), 'bad_command']]) {
        const [k, e] = await outcome(p);
        assert.equal(k, 'err');
        assertHeraldError(e, code);
    }
    assert.deepEqual(ws.sent, []);
    assert.throws(() => h.onPresence(1), TypeError);
    assert.throws(() => h.onError('x'), TypeError);
    h.close();
});

test('subscribe, unsubscribe, subscribe again before the answers: the last one wins', async () => {
    const [h, ws] = await openClient();
    const a = h.subscribe('a');
    const b = h.unsubscribe('a');
    const c = h.subscribe('a', { token: 'second' });
    ws.answer({ op: 'ok', ref: 1 });
    ws.answer({ op: 'ok', ref: 2 });
    ws.answer({ op: 'ok', ref: 3 });
    await Promise.all([a, b, c]);
    ws.drop(1006);
    const ws2 = await nthSocket(2);
    ws2.open();
    assert.deepEqual(ws2.sent, [{ op: 'subscribe', channel: 'a', token: 'second', ref: 1 }]);
    h.close();
});

/* -- history and recovery (docs/protocol.md, Recovery; spec issue 5) -- */

/* Reconnect `h` after `ws` drops: the next FakeWebSocket, opened. */
async function reconnect(ws, n) {
    ws.drop(1006);
    const next = await nthSocket(n);
    next.open();
    return next;
}

test('the URL carries since: empty first, then the user stream\'s last id, encoded', async () => {
    const [h, ws] = await openClient();
    assert.equal(ws.url, 'ws://h.test/ws?since=');
    ws.answer({ op: 'stream', id: 'ab12cd34:0', recovered: true });
    ws.answer({ id: 'ab12cd34:5', event: 'e', data: 1 });
    ws.answer({ channel: 'news:1', id: 'ab12cd34:9', event: 'c' });     /* not the user's */
    ws.answer({ event: 'broadcast' });                                  /* no id */
    const ws2 = await reconnect(ws, 2);
    assert.equal(ws2.url, 'ws://h.test/ws?since=ab12cd34%3A5');
    assert.deepEqual(ws2.protocols, ['herald', 'herald.token.t'], 'the token stays out of it');
    ws2.answer({ op: 'stream', id: 'ab12cd34:12', recovered: false });
    const ws3 = await reconnect(ws2, 3);
    assert.equal(ws3.url, 'ws://h.test/ws?since=ab12cd34%3A12', 'the stream frame sets it too');
    h.close();

    const [h2, q] = await openClient({ protocols: false, token: 'a.b' });
    assert.equal(q.url, 'ws://h.test/ws?token=a.b&since=');
    q.answer({ op: 'stream', id: 'ab12cd34:3', recovered: true });
    const q2 = await reconnect(q, 2);
    assert.equal(q2.url, 'ws://h.test/ws?token=a.b&since=ab12cd34%3A3');
    h2.close();
});

test('position() shows the last id of the user stream and of each remembered channel',
    async () => {
    const [h, ws] = await openClient();
    assert.deepEqual(h.position(), { user: null, channels: {} });
    ws.answer({ op: 'stream', id: 'e0:0', recovered: true });
    const p = h.subscribe('a');
    assert.deepEqual(h.position(), { user: 'e0:0', channels: { a: null } });
    ws.answer({ op: 'ok', ref: 1, id: 'e0:3' });
    await p;
    assert.deepEqual(h.position(), { user: 'e0:0', channels: { a: 'e0:3' } });
    ws.answer({ channel: 'a', id: 'e0:7', event: 'x' });
    ws.answer({ id: 'e0:8', event: 'y' });
    ws.answer({ channel: 'other', id: 'e0:9', event: 'z' });    /* not remembered: not kept */
    const pos = h.position();
    assert.deepEqual(pos, { user: 'e0:8', channels: { a: 'e0:7' } });
    pos.channels.a = 'mine';
    assert.equal(h.position().channels.a, 'e0:7', 'a copy');
    const un = h.unsubscribe('a');
    ws.answer({ op: 'ok', ref: 2 });
    await un;
    assert.deepEqual(h.position(), { user: 'e0:8', channels: {} }, 'unsubscribe forgets it');
    h.close();
});

test('a resubscription sends since: the channel\'s last id; a first subscribe does not',
    async () => {
    const [h, ws] = await openClient();
    const subs = [h.subscribe('a'), h.subscribe('doc:7', { token: 'chan.jwt' }),
        h.subscribe('nohist')];
    assert.deepEqual(ws.sent.map((m) => m.since), [undefined, undefined, undefined]);
    ws.answer({ op: 'ok', ref: 1, id: 'e0:1' });
    ws.answer({ op: 'ok', ref: 2, id: 'e0:2' });
    ws.answer({ op: 'ok', ref: 3 });               /* Herald without history: no id */
    await Promise.all(subs);
    ws.answer({ channel: 'a', id: 'e0:10', event: 'x' });
    ws.answer({ channel: 'a', id: 'e0:11', event: 'x' });
    ws.drop(1006);
    const ws2 = await nthSocket(2);
    const queued = h.subscribe('late');
    ws2.open();
    assert.deepEqual(ws2.sent, [
        { op: 'subscribe', channel: 'a', since: 'e0:11', ref: 1 },
        { op: 'subscribe', channel: 'doc:7', token: 'chan.jwt', since: 'e0:2', ref: 2 },
        { op: 'subscribe', channel: 'nohist', ref: 3 },
        { op: 'subscribe', channel: 'late', ref: 4 },
    ]);
    ws2.answer({ op: 'ok', ref: 4, id: 'e0:20' });
    assert.deepEqual(await queued, {}, 'the promise of subscribe() never shows ids');
    ws2.drop(1006);              /* no answers to the resubscriptions: same since again */
    const ws3 = await nthSocket(3);
    ws3.open();
    assert.deepEqual(ws3.sent.map((m) => [m.channel, m.since]),
        [['a', 'e0:11'], ['doc:7', 'e0:2'], ['nohist', undefined], ['late', 'e0:20']]);
    h.close();
});

test('a replay overlapping what was seen is not delivered twice; a new epoch starts afresh',
    async () => {
    const [h, ws] = await openClient();
    const seen = [];
    h.on('*', (data, event, meta) => seen.push(meta.channel ? meta.channel + ':' + data : data));
    ws.answer({ op: 'stream', id: 'e0:0', recovered: true });
    const p = h.subscribe('a');
    ws.answer({ op: 'ok', ref: 1, id: 'e0:0' });
    await p;
    ws.answer({ id: 'e0:4', event: 'u', data: 4 });
    ws.answer({ id: 'e0:5', event: 'u', data: 5 });
    ws.answer({ channel: 'a', id: 'e0:9', event: 'c', data: 9 });
    const ws2 = await reconnect(ws, 2);
    assert.equal(ws2.sent[0].since, 'e0:9');
    for (const n of [4, 5, 6]) {
        ws2.answer({ id: 'e0:' + n, event: 'u', data: n });     /* 4 and 5 again */
    }
    ws2.answer({ op: 'stream', id: 'e0:6', recovered: true });
    ws2.answer({ id: 'e0:6', event: 'u', data: 6 });             /* and live once more */
    for (const n of [8, 9, 10]) {
        ws2.answer({ channel: 'a', id: 'e0:' + n, event: 'c', data: n });
    }
    ws2.answer({ op: 'ok', ref: 1, id: 'e0:10', recovered: true });
    ws2.answer({ channel: 'a', id: 'e0:10', event: 'c', data: 10 });
    ws2.answer({ event: 'b', data: 'no id' });
    ws2.answer({ event: 'b', data: 'no id' });                   /* no id: always delivered */
    ws2.answer({ id: 'e0:10', event: 'u', data: 'u10' });        /* streams are apart */
    assert.deepEqual(seen, [4, 5, 'a:9', 6, 'a:10', 'no id', 'no id', 'u10']);
    /* Herald restarted: its new epoch's offsets start low again. */
    const ws3 = await reconnect(ws2, 3);
    ws3.answer({ op: 'stream', id: 'f1:0', recovered: false });
    ws3.answer({ op: 'ok', ref: 1, id: 'f1:0', recovered: false });
    ws3.answer({ id: 'f1:1', event: 'u', data: 'f1' });
    ws3.answer({ channel: 'a', id: 'f1:2', event: 'c', data: 'f2' });
    ws3.answer({ id: 'f1:1', event: 'u', data: 'f1 again' });
    assert.deepEqual(seen.slice(8), ['f1', 'a:f2']);
    assert.deepEqual(h.position(), { user: 'f1:1', channels: { a: 'f1:2' } });
    h.close();
});

test('subscribing again to a channel it has keeps the position it reached', async () => {
    const [h, ws] = await openClient();
    const seen = [];
    h.on('*', (data) => seen.push(data));
    const p = h.subscribe('a');
    ws.answer({ op: 'ok', ref: 1, id: 'e0:1' });
    await p;
    ws.answer({ channel: 'a', id: 'e0:5', event: 'c', data: 5 });
    const again = h.subscribe('a');
    ws.answer({ op: 'ok', ref: 2, id: 'e0:9' });    /* the channel's newest, not yet here */
    await again;
    assert.equal(h.position().channels.a, 'e0:5');
    ws.answer({ channel: 'a', id: 'e0:7', event: 'c', data: 7 });
    assert.deepEqual(seen, [5, 7], 'a message still on its way is not taken for a repeat');
    const ws2 = await reconnect(ws, 2);
    assert.equal(ws2.sent[0].since, 'e0:7');
    ws2.answer({ op: 'ok', ref: 1, id: 'e0:12', recovered: true });
    assert.equal(h.position().channels.a, 'e0:12', 'a resubscription takes Herald\'s id');
    const queued = h.subscribe('b');
    ws2.answer({ op: 'ok', ref: 2, id: 'e0:13' });
    await queued;
    assert.equal(h.position().channels.b, 'e0:13', 'so does a first subscribe');
    h.close();
});

test('offsets compare as numbers, even past 2^53; odd ids are delivered and not kept',
    async () => {
    const [h, ws] = await openClient();
    const seen = [];
    h.on('*', (data) => seen.push(data));
    ws.answer({ op: 'stream', id: 'e0:9', recovered: true });
    ws.answer({ id: 'e0:10', event: 'u', data: 10 });        /* "10" < "9" as strings */
    ws.answer({ id: 'e0:010', event: 'u', data: '010' });    /* the same offset */
    ws.answer({ id: 'e0:9007199254740993', event: 'u', data: 'big' });
    ws.answer({ id: 'e0:9007199254740992', event: 'u', data: 'big-1' });
    ws.answer({ id: 'e0:9007199254740993', event: 'u', data: 'big again' });
    ws.answer({ id: 'e0:9007199254740994', event: 'u', data: 'big+1' });
    ws.answer({ id: 'no colon', event: 'u', data: 'odd' });
    ws.answer({ id: 7, event: 'u', data: 'not a string' });
    assert.deepEqual(seen, [10, 'big', 'big+1', 'odd', 'not a string']);
    assert.equal(h.position().user, 'e0:9007199254740994');
    h.close();
});

test('onRecover: after every reconnect, not the first connection, per stream', async () => {
    const [h, ws] = await openClient();
    const calls = [];
    const fn = (stream, recovered) => calls.push([stream, recovered]);
    h.onRecover(fn);
    h.on('*', (data) => calls.push(['event', data]));
    ws.answer({ op: 'stream', id: 'e0:0', recovered: true });
    const p = h.subscribe('a');
    ws.answer({ op: 'ok', ref: 1, id: 'e0:0' });
    await p;
    assert.deepEqual(calls, [], 'nothing on the first connection');

    const ws2 = await reconnect(ws, 2);
    const late = h.subscribe('late');          /* a first subscribe: not a recovery */
    ws2.answer({ id: 'e0:1', event: 'u', data: 'missed' });
    ws2.answer({ op: 'stream', id: 'e0:1', recovered: true });
    ws2.answer({ channel: 'a', id: 'e0:2', event: 'c', data: 'missed in a' });
    ws2.answer({ op: 'ok', ref: 1, id: 'e0:2', recovered: true });
    ws2.answer({ op: 'ok', ref: 2, id: 'e0:2' });
    await late;
    assert.deepEqual(calls, [['event', 'missed'], [null, true], ['event', 'missed in a'],
        ['a', true]], 'after what was replayed');

    calls.length = 0;
    const ws3 = await reconnect(ws2, 3);
    assert.equal(ws3.url, 'ws://h.test/ws?since=e0%3A1');
    ws3.answer({ op: 'stream', id: 'e0:9', recovered: false });
    ws3.answer({ op: 'ok', ref: 2, id: 'e0:9', recovered: true });
    ws3.answer({ op: 'ok', ref: 1, id: 'e0:9', recovered: false });
    assert.deepEqual(calls, [[null, false], ['late', true], ['a', false]]);

    calls.length = 0;
    h.offRecover(fn);
    const ws4 = await reconnect(ws3, 4);
    ws4.answer({ op: 'stream', id: 'e0:9', recovered: true });
    ws4.answer({ op: 'ok', ref: 1, id: 'e0:9', recovered: true });
    assert.deepEqual(calls, []);
    assert.throws(() => h.onRecover(null), TypeError);
    h.close();
});

test('onRecover says false for a gap while connected (a cluster\'s Redis lost messages)',
    async () => {
        const [h, ws] = await openClient();
        const calls = [];
        h.onRecover((stream, recovered) => calls.push([stream, recovered]));
        ws.answer({ op: 'stream', id: 'e0:3', recovered: true });
        const p = h.subscribe('a');
        ws.answer({ op: 'ok', ref: 1, id: 'e0:4' });
        await p;
        ws.answer({ op: 'stream', channel: 'a', id: 'f1:2', recovered: false, gap: true });
        ws.answer({ op: 'stream', channel: 'gone', id: 'f1:2', recovered: false, gap: true });
        ws.answer({ op: 'stream', id: 'f1:7', recovered: false, gap: true });
        assert.deepEqual(calls, [['a', false], [null, false]], 'one call per remembered stream');
        assert.deepEqual(h.position(), { user: 'f1:7', channels: { a: 'f1:2' } },
            'the positions Herald gave, to recover from next time');
        h.close();
    });

test('onRecover says false when nothing could be recovered: no position, no history',
    async () => {
    const [h, ws] = await openClient();
    const calls = [];
    h.onRecover((stream, recovered) => calls.push([stream, recovered]));
    h.on('*', (data) => calls.push(['event', data]));
    const p = h.subscribe('nohist');
    ws.answer({ op: 'ok', ref: 1 });           /* no id: Herald keeps no history */
    await p;
    /* Closed before the stream frame came: no position, so since stays empty. */
    const ws2 = await reconnect(ws, 2);
    assert.equal(ws2.url, 'ws://h.test/ws?since=');
    ws2.answer({ op: 'stream', id: 'e0:4', recovered: true });
    ws2.answer({ op: 'ok', ref: 1 });
    assert.deepEqual(calls, [[null, false], ['nohist', false]],
        'Herald\'s "recovered" for an empty since means nothing: messages may be lost');

    /* A Herald without history sends no stream frame: the first other frame says so. */
    calls.length = 0;
    const ws3 = await reconnect(ws2, 3);
    ws3.answer({ event: 'u', data: 'no id' });
    ws3.answer({ op: 'ok', ref: 1 });
    assert.deepEqual(calls, [[null, false], ['event', 'no id'], ['nohist', false]]);
    calls.length = 0;
    const ws4 = await reconnect(ws3, 4);
    ws4.answer({ op: 'ok', ref: 1 });
    ws4.answer({ op: 'stream', id: 'e0:5', recovered: true });     /* too late to count */
    assert.deepEqual(calls, [[null, false], ['nohist', false]]);

    /* A refused resubscription goes to onError only. */
    calls.length = 0;
    const errors = [];
    h.onError((e) => errors.push(e.code));
    const ws5 = await reconnect(ws4, 5);
    ws5.answer({ op: 'stream', id: 'e0:5', recovered: true });
    ws5.answer({ op: 'error', ref: 1, code: 'forbidden', message: 'no more' });
    assert.deepEqual(calls, [[null, true]]);
    assert.deepEqual(errors, ['forbidden']);
    h.close();
});

test('an anonymous client has no user stream: onRecover only for its channels', async () => {
    const [h, ws] = await openClient({ token: undefined });
    const calls = [];
    h.onRecover((stream, recovered) => calls.push([stream, recovered]));
    const p = h.subscribe('news:1');
    ws.answer({ op: 'ok', ref: 1, id: 'e0:3' });
    await p;
    const ws2 = await reconnect(ws, 2);
    assert.equal(ws2.url, 'ws://h.test/ws?since=');
    assert.equal(ws2.protocols, undefined);
    ws2.answer({ event: 'b', data: null });
    ws2.answer({ op: 'ok', ref: 1, id: 'e0:3', recovered: true });
    assert.deepEqual(calls, [['news:1', true]]);
    h.close();
});

async function runUnitTests() {
    let failed = 0;
    console.log(`1..${unitTests.length}`);
    for (let i = 0; i < unitTests.length; i++) {
        const t = unitTests[i];
        try {
            await t.fn();
            console.log(`ok ${i + 1} - ${t.name}`);
        } catch (e) {
            failed++;
            console.log(`not ok ${i + 1} - ${t.name}`);
            console.log(String(e.stack || e).split('\n').map((l) => `# ${l}`).join('\n'));
        }
    }
    return failed;
}

/* Live mode: two real clients, reporting everything as JSON lines, until stdin says stop. */
async function runLive(url, token) {
    const WebSocket = require('ws');
    const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
    const clients = ['proto', 'query'].map((name) => {
        const h = new Herald(url, {
            WebSocket,
            protocols: name === 'proto',
            getToken: async () => {
                say({ live: 'token', client: name });
                return token;
            },
        });
        h.onState((state, info) => say({ live: 'state', client: name, state,
            code: info.code, retryIn: info.retryIn }));
        h.on('*', (data, event) => say({ live: 'event', client: name, event, data }));
        return h;
    });
    say({ live: 'ready' });
    const rl = readline.createInterface({ input: process.stdin });
    await new Promise((resolve) => {
        rl.on('line', (line) => line.trim() === 'close' && resolve());
        rl.on('close', resolve);
    });
    clients.forEach((h) => h.close());
    await sleep(100);
    say({ live: 'done' });
    process.exit(0);
}

async function main() {
    Herald = MODULE ? (await import(require('node:url').pathToFileURL(HERALD_MJS).href)).Herald
        : require(HERALD_JS);
    const failed = await runUnitTests();
    console.log(`# tested ${MODULE ? 'herald.mjs (import)' : 'herald.js (require)'}`);
    if (failed) {
        console.log(`# ${failed} failed`);
        process.exit(1);
    }
    if (ARGS.length >= 2) {
        await runLive(ARGS[0], ARGS[1]);
    }
}

main().catch((e) => {
    console.log(`not ok - ${e.stack || e}`);
    process.exit(1);
});
