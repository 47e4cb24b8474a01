'use strict';
/*
 * server.js -- the Node peer of Herald's benchmarks (bench/run.py, make bench).
 *
 * A WebSocket push server written the way Node users write one: one process
 * (no cluster module, as most deployments run it), npm `ws` on an http server,
 * a Map from user to the Set of that user's sockets, and a POST endpoint the
 * application calls to publish.
 *
 *   node server.js [PORT]          (or PORT in the environment; default 8080)
 *   ws://127.0.0.1:PORT/ws?user=u17        subscribe as user u17
 *   POST /pub/all   body = JSON payload    broadcast to every open socket
 *   POST /pub/u17   body = JSON payload    send to every socket of u17
 *
 * Each publish sends {"event":"b","data":<payload>}, built with
 * JSON.stringify once per publish and reused for every recipient (what
 * Herald does too), and answers 200 {"delivered":N}. A body that is not
 * JSON gets 400. It listens on 127.0.0.1 only.
 */
const http = require('http');
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || process.env.PORT || 8080);
const users = new Map(); // user id -> Set of sockets

const server = http.createServer(onRequest);
const wss = new WebSocketServer({ server, path: '/ws' });

wss.on('connection', (ws, req) => {
    const user = new URL(req.url, 'http://localhost').searchParams.get('user');
    if (!user) {
        ws.close(1008, 'user required');
        return;
    }
    let set = users.get(user);
    if (!set) {
        set = new Set();
        users.set(user, set);
    }
    set.add(ws);
    ws.on('error', () => {});
    ws.on('close', () => {
        set.delete(ws);
        if (set.size === 0 && users.get(user) === set) users.delete(user);
    });
});

// Sends one message to each open socket of `targets`; returns how many.
function send(targets, message) {
    let delivered = 0;
    for (const ws of targets) {
        if (ws.readyState === WebSocket.OPEN) {
            ws.send(message);
            delivered++;
        }
    }
    return delivered;
}

function reply(res, status, body) {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
}

function onRequest(req, res) {
    const m = /^\/pub\/(\w+)$/.exec(req.url);
    if (req.method !== 'POST' || !m) {
        reply(res, 404, { error: 'not found' });
        return;
    }
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
        let data;
        try {
            data = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch (e) {
            reply(res, 400, { error: 'body is not JSON' });
            return;
        }
        const message = JSON.stringify({ event: 'b', data });
        const channel = m[1];
        const targets = channel === 'all' ? wss.clients : users.get(channel) || [];
        reply(res, 200, { delivered: send(targets, message) });
    });
}

server.listen(port, '127.0.0.1', () => {
    console.log(`node peer listening on 127.0.0.1:${port}, pid ${process.pid}`);
});

process.on('SIGTERM', () => process.exit(0));
