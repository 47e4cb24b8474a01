/*
 * ok.ts -- a typed use of the whole herald-client API that must compile under --strict, as an
 * ES module (module nodenext, and again with moduleResolution bundler), and then run: compiled
 * by tests/integration/63-herald-js-types.py in a project that installed the npm package, run
 * with node, it prints one JSON line of what the client did (on a stand-in WebSocket).
 */
import { Herald, HeraldError } from 'herald-client';
import type {
    HeraldOptions, Member, MessageMeta, Position, StateName, SubscribeResult, WebSocketClass,
} from 'herald-client';
import HeraldDefault from 'herald-client';

/* The application's events and their payloads. */
type Events = {
    'order.shipped': { order: number; carrier?: string };
    chat: { text: string };
};

/* A stand-in WebSocket the test opens and feeds by hand; it keeps what the client sent. */
class Stub {
    onopen: ((event: unknown) => void) | null = null;
    onmessage: ((event: { data: unknown }) => void) | null = null;
    onerror: ((event: unknown) => void) | null = null;
    onclose: ((event: { code: number; reason: string }) => void) | null = null;
    static made: Stub[] = [];
    sent: string[] = [];
    constructor(readonly url: string, readonly protocols?: string[]) {
        Stub.made.push(this);
    }
    send(data: string): void {
        this.sent.push((JSON.parse(data) as { op: string }).op);
    }
    close(code?: number): void {
        void code;
    }
}

/* The client's first WebSocket, once it made one (it asks getToken() first). */
async function firstSocket(): Promise<Stub> {
    for (let i = 0; i < 1000 && Stub.made.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const ws = Stub.made[0];
    if (!ws) {
        throw new Error('no WebSocket was made');
    }
    return ws;
}

/* In a browser, the global WebSocket fits too (never called here: Node 18 has none). */
export function inBrowser(): Herald {
    return new Herald(`wss://${location.host}/ws`, { WebSocket });
}

const options: HeraldOptions = {
    getToken: async () => 'jwt',
    protocols: true,
    backoffBase: 250,
    backoffMax: 5000,
    stableAfter: 10000,
    rpcTimeout: 2000,
    WebSocket: Stub satisfies WebSocketClass,
};
const h = new Herald<Events>('ws://127.0.0.1:9/ws', options);
const seen: string[] = [];

h.on('order.shipped', (data, event, meta: MessageMeta) => {
    const order: number = data.order;
    const name: 'order.shipped' = event;
    const id: string | undefined = meta.id;
    seen.push(`${name} ${order} ${meta.channel ?? '-'} ${meta.from ?? '-'} ${id ?? '-'}`);
});
h.on('*', (data, event) => {
    const text: string = event === 'chat' ? 'chat' : event;
    seen.push(`${text} ${JSON.stringify(data)}`);
});
const onChat = (data: { text: string }) => seen.push(data.text);
h.on('chat', onChat).off('chat', onChat);
const ignored = (data: unknown, event: string) => seen.push(`never ${event}`);
h.on('*', ignored).off('*', ignored);

const states: StateName[] = [];
h.onState((state, info) => {
    states.push(state);
    if (state === 'close') {
        const retry: number | null = info.retryIn;
        seen.push(`close ${info.code} ${retry}`);
    } else if (state === 'connecting') {
        const retry: number | null = info.retry;
        void retry;
    } else if (state === 'error') {
        const why: unknown = info.error;
        void why;
    }
});
h.onState((state) => void state);
h.onPresence((kind, channel, member: Member) => seen.push(`${kind} ${channel} ${member.user}`));
h.onError((err: HeraldError) => seen.push(err.code));
h.onRecover((stream, recovered) => seen.push(`${stream ?? 'user'} ${recovered}`));

async function main(): Promise<void> {
    const ws = await firstSocket();
    ws.onopen?.({});
    ws.onmessage?.({ data: JSON.stringify({ event: 'order.shipped', data: { order: 7 },
        channel: 'orders:1', id: 'e1:3' }) });
    const sub: Promise<SubscribeResult> = h.subscribe('room:1', { token: 'channel-jwt' });
    const unsub: Promise<void> = h.unsubscribe('team:2');
    const pub: Promise<void> = h.publish('chat:1', { text: 'hi' }, { event: 'chat', echo: false });
    const call: Promise<{ id: number }[]> = h.rpc<{ id: number }[]>('tasks.list', { done: false },
        { timeout: 0 });
    const members: Member<{ name: string }>[] = h.members('room:1');
    const where: Position = h.position();
    const before = { state: h.state, url: h.url, backoffMax: h.options.backoffMax };
    h.close();
    const outcomes = await Promise.allSettled([sub, unsub, pub, call]);
    const errors = outcomes.map((o) => {
        if (o.status === 'fulfilled') {
            return 'fulfilled';
        }
        const e: unknown = o.reason;
        return e instanceof HeraldError ? `${e.name} ${e.code} ${e.channel ?? '-'}` : String(e);
    });
    const direct = new Herald.HeraldError('timeout', 'made here');
    console.log(JSON.stringify({
        before, after: h.state, errors, members, where, states, seen,
        socket: [ws.url, ws.protocols, ws.sent],
        sameDefault: HeraldDefault === Herald, direct: [direct.code, direct.message,
            direct instanceof Error],
    }));
}

void main();
