/*
 * ok-require.cts -- herald-client from a CommonJS TypeScript file: `import ... from` compiled to
 * require(), and `import = require()`. Must compile under --strict (module nodenext) and then
 * run: tests/integration/63-herald-js-types.py runs the output with node, which prints one
 * JSON line.
 */
import { Herald, HeraldError } from 'herald-client';
import HeraldDefault from 'herald-client';
import herald = require('herald-client');

/* A WebSocket that never opens. */
class Idle {
    onopen = null;
    onmessage = null;
    onerror = null;
    onclose = null;
    send(data: string): void {
        void data;
    }
    close(): void {}
}

const h = new herald.Herald('ws://127.0.0.1:9/ws', { WebSocket: Idle, token: 'jwt' });
const p = h.rpc<number>('sum', [1, 2]);
h.close();
p.then(() => console.log('{"unexpected": "resolved"}'), (e: unknown) => {
    console.log(JSON.stringify({
        code: e instanceof HeraldError ? e.code : String(e),
        same: Herald === herald.Herald && HeraldDefault === Herald &&
            herald.default === Herald && herald.HeraldError === HeraldError,
        state: h.state,
    }));
});
