/*
 * herald-js-driver.js -- php-client/js/herald.js clients under Node (the `ws` package as their
 * WebSocket), steered by another process one JSON line at a time: the channel, presence and RPC
 * tests of tests/integration/62-herald-js-channels.py and the recovery tests of
 * tests/integration/64-herald-js-recovery.py drive several clients of a real Herald through it.
 *
 * Usage:      node tests/js/herald-js-driver.js
 *             then one JSON command per stdin line:
 *               {"do":"new","c":"ann","url":"ws://...","token":"JWT","options":{...}}
 *                   a new Herald named "ann"; options go to the constructor (backoffBase, ...)
 *               {"do":"call","c":"ann","id":1,"method":"subscribe","args":["room:1"]}
 *                   ann[method](...args); its value, or what its Promise settles to, is
 *                   reported under the same id
 *               {"do":"close","c":"ann"}       ann.close()
 *               {"do":"exit"}                  (or EOF) close every client and exit 0
 *             and one JSON report per stdout line:
 *               {"kind":"ready"}                                          at start
 *               {"c":"ann","kind":"state","state":"open","code":null,"retryIn":null}
 *               {"c":"ann","kind":"event","event":"chat","data":...,
 *                "meta":{"channel":"chat:1","from":"42"}}                 (null when undefined)
 *               {"c":"ann","kind":"presence","type":"join","channel":"room:1",
 *                "member":{"user":"7","info":{...}}}
 *               {"c":"ann","kind":"error","code":"bad_token","message":"...","channel":"doc:7"}
 *                                                                         from onError
 *               {"c":"ann","kind":"recover","stream":null,"recovered":true}
 *                                                 from onRecover (stream: null or the channel)
 *               {"c":"ann","kind":"result","id":1,"ok":true,"value":{...}}
 *               {"c":"ann","kind":"result","id":1,"ok":false,"name":"HeraldError",
 *                "code":"forbidden","message":"...","channel":"secret:1"}
 *               {"kind":"done"}                                           before exiting
 *             A bad command is reported as {"kind":"bad","error":"..."}; the driver goes on.
 * Needs:      `npm ci --prefix tests/js` (installs ws from tests/js/package-lock.json).
 */
'use strict';

const path = require('node:path');
const readline = require('node:readline');
const WebSocket = require('ws');
const Herald = require(path.join(__dirname, '..', '..', 'php-client', 'js', 'herald.js'));

const clients = new Map();      /* name -> Herald */

const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const orNull = (v) => (v === undefined ? null : v);

/* A thrown or rejected value as report fields. */
function failure(e) {
    return { ok: false, name: e && e.name, code: orNull(e && e.code),
        message: String(e && e.message), channel: orNull(e && e.channel) };
}

/* Create client `c` and report everything it sees. */
function newClient(cmd) {
    const c = cmd.c;
    const options = Object.assign({ WebSocket }, cmd.options || {});
    if (cmd.token) {
        options.token = cmd.token;
    }
    const h = new Herald(cmd.url, options);
    h.onState((state, info) => say({ c, kind: 'state', state, code: orNull(info.code),
        retryIn: orNull(info.retryIn) }));
    h.on('*', (data, event, meta) => say({ c, kind: 'event', event, data,
        meta: { channel: orNull(meta.channel), from: orNull(meta.from) } }));
    h.onPresence((type, channel, member) => say({ c, kind: 'presence', type, channel, member }));
    h.onError((e) => say(Object.assign({ c, kind: 'error' }, failure(e))));
    h.onRecover((stream, recovered) => say({ c, kind: 'recover', stream, recovered }));
    clients.set(c, h);
}

/* Run ann[method](...args) and report the outcome under cmd.id. */
function call(cmd) {
    const h = clients.get(cmd.c);
    const report = (fields) => say(Object.assign({ c: cmd.c, kind: 'result', id: cmd.id },
        fields));
    let value;
    try {
        value = h[cmd.method].apply(h, cmd.args || []);
    } catch (e) {
        report(failure(e));
        return;
    }
    Promise.resolve(value).then((v) => report({ ok: true, value: orNull(v) }),
        (e) => report(failure(e)));
}

function handle(line) {
    if (!line.trim()) {
        return false;
    }
    let cmd;
    try {
        cmd = JSON.parse(line);
        if (cmd.do === 'exit') {
            return true;
        }
        if (cmd.do === 'new') {
            newClient(cmd);
        } else if (!clients.has(cmd.c)) {
            throw new Error(`no client ${cmd.c}`);
        } else if (cmd.do === 'call') {
            call(cmd);
        } else if (cmd.do === 'close') {
            clients.get(cmd.c).close();
        } else {
            throw new Error(`unknown command ${cmd.do}`);
        }
    } catch (e) {
        say({ kind: 'bad', error: String(e.stack || e), line });
    }
    return false;
}

async function main() {
    say({ kind: 'ready' });
    const rl = readline.createInterface({ input: process.stdin });
    await new Promise((resolve) => {
        rl.on('line', (line) => handle(line) && resolve());
        rl.on('close', resolve);
    });
    clients.forEach((h) => h.close());
    await new Promise((resolve) => setTimeout(resolve, 100));
    say({ kind: 'done' });
    process.exit(0);
}

main().catch((e) => {
    say({ kind: 'bad', error: String(e.stack || e) });
    process.exit(1);
});
