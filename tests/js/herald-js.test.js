/*
 * herald-js.test.js -- tests of php-client/js/herald.js under Node, with the `ws` package as the
 * WebSocket implementation (Node 20 has no global WebSocket).
 *
 * Usage:      node tests/js/herald-js.test.js
 *                 unit tests only, against a fake WebSocket: no server needed. Prints TAP
 *                 ("ok N - name" / "not ok N - name"), exits 1 on any failure.
 *             node tests/js/herald-js.test.js <ws_url> <token>
 *                 the unit tests, then live mode against a real Herald: two clients (token as
 *                 subprotocol, and as ?token=) print one JSON line per thing they see on stdout:
 *                   {"live":"token","client":"proto"}          getToken() was called
 *                   {"live":"state","client":"proto","state":"open",...}
 *                   {"live":"event","client":"proto","event":"x","data":{...}}
 *                 and keep reconnecting until stdin says "close" or reaches EOF; then both
 *                 clients close and the process exits 0.
 * Driven by:  tests/integration/60-herald-js.py, which publishes and restarts Herald.
 * Needs:      `npm ci --prefix tests/js` (installs ws from tests/js/package-lock.json).
 */
'use strict';

const assert = require('node:assert/strict');
const path = require('node:path');
const readline = require('node:readline');
const HERALD_JS = path.join(__dirname, '..', '..', 'php-client', 'js', 'herald.js');
const Herald = require(HERALD_JS);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* A stand-in for the browser WebSocket: records what Herald asked for, lets a test fire events. */
class FakeWebSocket {
    constructor(url, protocols) {
        this.url = url;
        this.protocols = protocols;
        this.closedWith = null;
        FakeWebSocket.instances.push(this);
    }

    close(code) {
        this.closedWith = code;
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
    const browserish = vm.createContext({});
    browserish.self = browserish;
    vm.runInContext(src, browserish);
    assert.equal(typeof browserish.Herald._backoff, 'function');
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
    assert.equal(ws.url, 'ws://h.test/ws');
    assert.deepEqual(ws.protocols, ['herald', 'herald.token.a.b.c']);
    h.close();
});

test('protocols: false puts the token in the query string', async () => {
    FakeWebSocket.instances = [];
    const h1 = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket, token: 'a.b-c_d',
        protocols: false });
    const h2 = new Herald('ws://h.test/ws?x=1', { WebSocket: FakeWebSocket, token: 't',
        protocols: false });
    assert.equal((await nthSocket(1)).url, 'ws://h.test/ws?token=a.b-c_d');
    assert.equal((await nthSocket(2)).url, 'ws://h.test/ws?x=1&token=t');
    assert.equal(FakeWebSocket.instances[0].protocols, undefined);
    h1.close();
    h2.close();
});

test('without a token the client connects anonymously', async () => {
    FakeWebSocket.instances = [];
    const h = new Herald('ws://h.test/ws', { WebSocket: FakeWebSocket });
    const ws = await nthSocket(1);
    assert.equal(ws.url, 'ws://h.test/ws');
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
    const failed = await runUnitTests();
    if (failed) {
        console.log(`# ${failed} failed`);
        process.exit(1);
    }
    if (process.argv.length >= 4) {
        await runLive(process.argv[2], process.argv[3]);
    }
}

main().catch((e) => {
    console.log(`not ok - ${e.stack || e}`);
    process.exit(1);
});
