/*
 * browser-e2e.js -- a headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
 * for tests/integration/90-browser.py, which steers it one JSON line at a time while it starts,
 * restarts and publishes through the servers around it.
 *
 * Usage:      node tests/js/browser-e2e.js USER_DATA_DIR
 *             USER_DATA_DIR: a fresh empty directory for Chromium's profile; the caller
 *             removes it. Then one JSON command per stdin line, each answered by one line:
 *               {"do":"open","url":"http://..."}   load the page and wait for its load event
 *                   -> {"kind":"opened","status":200}
 *               {"do":"dom"}                       what the visitor sees
 *                   -> {"kind":"dom","state":"open","opens":1,"closes":[1001],"load":"...",
 *                       "messages":["..."],"recoveries":["user: recovered"],
 *                       "entry":"classic","global":true}   (herald.js; "module", false for
 *                       page.php?entry=module, which imports herald.mjs)
 *               {"do":"screenshot","path":"/abs/file.png"}   the whole page, as a PNG
 *                   -> {"kind":"screenshot","path":"/abs/file.png"}
 *               {"do":"exit"}                      (or EOF) close the browser and exit 0
 *                   -> {"kind":"done"}
 *             and, whenever they happen:
 *               {"kind":"ready","version":"156.0..."}        once the browser is up
 *               {"kind":"console","type":"error","text":"..."}   the page's console
 *               {"kind":"pageerror","message":"..."}           an uncaught exception in the page
 *               {"kind":"bad","error":"..."}      a command that failed; the driver goes on
 * Browser:    never downloaded: executablePath is /usr/bin/chromium (HERALD_CHROMIUM overrides),
 *             headless, without the sandbox (the tests run as root), GPU, first-run, background
 *             networking, component updates and sync. browser-context close ends it; SIGTERM
 *             and SIGINT make playwright close it too, and Chromium exits by itself when this
 *             process dies (its DevTools pipe closes).
 * Needs:      `npm ci --prefix tests/js` (playwright-core from tests/js/package-lock.json).
 */
'use strict';

const readline = require('node:readline');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'];
const STEP_TIMEOUT = 15000;     /* ms for one navigation or screenshot */

const say = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

/* What page.php shows, read in the page. */
function readDom() {
    const state = document.getElementById('state');
    const texts = (id) => Array.from(document.querySelectorAll('#' + id + ' li'),
        (li) => li.textContent);
    return {
        state: state.textContent,
        opens: Number(state.dataset.opens),
        closes: state.dataset.closes ? state.dataset.closes.split(' ').map(Number) : [],
        load: state.dataset.load || null,
        messages: texts('messages'),
        recoveries: texts('recoveries'),
        entry: state.dataset.entry || null,
        global: state.dataset.global === undefined ? null : state.dataset.global === 'true',
    };
}

async function handle(page, cmd) {
    if (cmd.do === 'open') {
        const response = await page.goto(cmd.url, { waitUntil: 'load', timeout: STEP_TIMEOUT });
        say({ kind: 'opened', status: response ? response.status() : null });
    } else if (cmd.do === 'dom') {
        say(Object.assign({ kind: 'dom' }, await page.evaluate(readDom)));
    } else if (cmd.do === 'screenshot') {
        await page.screenshot({ path: cmd.path, fullPage: true, timeout: STEP_TIMEOUT });
        say({ kind: 'screenshot', path: cmd.path });
    } else {
        throw new Error(`unknown command ${cmd.do}`);
    }
}

async function main() {
    const userDataDir = process.argv[2];
    if (!userDataDir) {
        throw new Error('usage: node browser-e2e.js USER_DATA_DIR');
    }
    const context = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM, headless: true, args: ARGS, timeout: STEP_TIMEOUT,
        viewport: { width: 800, height: 600 },
    });
    try {
        const page = context.pages()[0] || await context.newPage();
        page.on('console', (m) => say({ kind: 'console', type: m.type(), text: m.text() }));
        page.on('pageerror', (e) => say({ kind: 'pageerror', message: String(e.stack || e) }));
        say({ kind: 'ready', version: context.browser() ? context.browser().version() : null });

        const rl = readline.createInterface({ input: process.stdin });
        for await (const line of rl) {
            if (!line.trim()) {
                continue;
            }
            let cmd;
            try {
                cmd = JSON.parse(line);
                if (cmd.do === 'exit') {
                    break;
                }
                await handle(page, cmd);
            } catch (e) {
                say({ kind: 'bad', error: String(e.stack || e), line });
            }
        }
    } finally {
        await context.close();
    }
    say({ kind: 'done' });
}

main().then(() => process.exit(0), (e) => {
    say({ kind: 'bad', error: String(e.stack || e) });
    process.exit(1);
});
