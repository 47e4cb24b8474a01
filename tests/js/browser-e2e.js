/*
 * browser-e2e.js -- a headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
 * for the browser tests, tests/integration/90-browser.py and 91-demo-browser.py (through
 * tests/lib/browser.py), which steer it one JSON line at a time while they start, restart and
 * publish through the servers around it.
 *
 * Usage:      node tests/js/browser-e2e.js USER_DATA_DIR
 *             USER_DATA_DIR: a fresh empty directory for Chromium's profile; the caller
 *             removes it. Then one JSON command per stdin line, each answered by one line.
 *             Every command may name its tab with "page" (default "main"); a name not seen
 *             before opens a new tab in the same browser (one profile: two tabs of one site
 *             share its cookies, as a visitor's would).
 *               {"do":"open","url":"http://..."}   load the page and wait for its load event
 *                   -> {"kind":"opened","status":200}
 *               {"do":"dom"}                       what page.php (90-browser.py) shows
 *                   -> {"kind":"dom","state":"open","opens":1,"closes":[1001],"load":"...",
 *                       "messages":["..."],"recoveries":["user: recovered"],
 *                       "entry":"classic","global":true}   (herald.js; "module", false for
 *                       page.php?entry=module, which imports herald.mjs)
 *               {"do":"eval","expr":"document.title"}   a JS expression's JSON value in the
 *                   page (a Promise is awaited) -> {"kind":"eval","value":...}
 *               {"do":"fill","selector":"#text","value":"hi"}   type into a field
 *               {"do":"click","selector":"#send"}  click as a user does (waits until the
 *                   element is visible, enabled and still)
 *               {"do":"check","selector":"li input"}   tick a checkbox
 *                   -> each of the three: {"kind":"acted"}
 *               {"do":"screenshot","path":"/abs/file.png"}   the whole page, as a PNG
 *                   -> {"kind":"screenshot","path":"/abs/file.png"}
 *               {"do":"exit"}                      (or EOF) close the browser and exit 0
 *                   -> {"kind":"done"}
 *             and, whenever they happen, each with the "page" it happened in:
 *               {"kind":"ready","version":"156.0..."}        once the browser is up
 *               {"kind":"console","type":"error","text":"..."}   the page's console
 *               {"kind":"pageerror","message":"..."}           an uncaught exception in the page
 *               {"kind":"requestfailed","url":"...","error":"net::..."}   a request that got
 *                   no answer (refused, aborted, blocked)
 *               {"kind":"httperror","url":"...","status":404}   an answer of 400 or more
 *                   (a missing favicon, a refused fetch)
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

/* Tell the test everything a visitor would see go wrong in `page`, the tab named `name`. */
function watch(page, name) {
    page.on('console', (m) => say({ kind: 'console', page: name, type: m.type(), text: m.text() }));
    page.on('pageerror', (e) => say({
        kind: 'pageerror', page: name, message: String(e.stack || e),
    }));
    page.on('requestfailed', (r) => say({
        kind: 'requestfailed', page: name, url: r.url(),
        error: r.failure() ? r.failure().errorText : 'failed',
    }));
    page.on('response', (r) => {
        if (r.status() >= 400) {
            say({ kind: 'httperror', page: name, url: r.url(), status: r.status() });
        }
    });
    return page;
}

/* The tab named `name`, opened (and watched) the first time it is named. */
async function tab(context, pages, name) {
    if (!pages.has(name)) {
        pages.set(name, watch(await context.newPage(), name));
    }
    return pages.get(name);
}

async function handle(page, cmd) {
    const opts = { timeout: STEP_TIMEOUT };
    if (cmd.do === 'open') {
        const response = await page.goto(cmd.url, { waitUntil: 'load', timeout: STEP_TIMEOUT });
        say({ kind: 'opened', status: response ? response.status() : null });
    } else if (cmd.do === 'dom') {
        say(Object.assign({ kind: 'dom' }, await page.evaluate(readDom)));
    } else if (cmd.do === 'eval') {
        say({ kind: 'eval', value: await page.evaluate(cmd.expr) });
    } else if (cmd.do === 'fill') {
        await page.fill(cmd.selector, cmd.value, opts);
        say({ kind: 'acted' });
    } else if (cmd.do === 'click') {
        await page.click(cmd.selector, opts);
        say({ kind: 'acted' });
    } else if (cmd.do === 'check') {
        await page.check(cmd.selector, opts);
        say({ kind: 'acted' });
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
        const pages = new Map([['main', watch(context.pages()[0] || await context.newPage(),
            'main')]]);
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
                await handle(await tab(context, pages, cmd.page || 'main'), cmd);
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
