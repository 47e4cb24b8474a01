/*
 * dts-check.js -- does php-client/js/herald.d.ts describe the real client? Every name the types
 * declare must exist at run time, and every public name at run time must be declared.
 *
 * Usage:      node tests/js/dts-check.js [DIR]
 *                 DIR holds herald.d.ts, herald.d.mts, herald.mjs and herald.js (default
 *                 php-client/js; the tests pass a tampered copy to see the check fail).
 *             Prints one JSON line {"ok": bool, "compared": {...}, "problems": [...]}; exits 0
 *             when ok, 1 when the types and the code disagree, 2 when it cannot run.
 * What:       TypeScript's own checker (the typescript package of tests/js) reads the types:
 *               - the value exports of herald.d.mts against the exports of herald.mjs (import),
 *                 and of herald.d.ts against what require('herald.js') returns (its own
 *                 properties: the module as TypeScript sees a CommonJS file);
 *               - the static and instance members of class Herald against the class and an
 *                 instance (on a stand-in WebSocket that never connects), and the members of
 *                 HeraldError against a real rejection (with its channel);
 *               - HeraldSettings against the options an instance holds.
 *             Names starting with "_" are internal and not compared; Error's own members
 *             (message, stack) are not either.
 * Driven by:  tests/integration/61-herald-js-package.py.
 */
'use strict';

const path = require('node:path');
const { pathToFileURL } = require('node:url');

const ROOT = path.join(__dirname, '..', '..');
const ts = require(path.join(__dirname, 'node_modules', 'typescript'));

/* A WebSocket that never opens: the instance is only looked at. */
function Idle() {}
Idle.prototype.send = function () {};
Idle.prototype.close = function () {};

/* The TypeScript checker over the two declaration files in dir. */
function typesOf(dir) {
    const files = ['herald.d.ts', 'herald.d.mts'].map((f) => path.join(dir, f));
    const program = ts.createProgram(files, {
        module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true, noEmit: true, types: [], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    });
    const errors = ts.getPreEmitDiagnostics(program).map((d) =>
        ts.flattenDiagnosticMessageText(d.messageText, ' '));
    if (errors.length) {
        throw new Error('the declaration files do not compile: ' + errors.join('; '));
    }
    const checker = program.getTypeChecker();
    const exportsOf = (file) => {
        const sym = checker.getSymbolAtLocation(program.getSourceFile(file));
        return checker.getExportsOfModule(sym);
    };
    return { checker, dts: exportsOf(files[0]), dmts: exportsOf(files[1]) };
}

/* The symbol an export stands for, through `export { x } from` and `export *`. */
function resolve(checker, sym) {
    return sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
}

/* Names of the exports that are values (not types only). */
function valueNames(checker, exports) {
    return exports.filter((s) => resolve(checker, s).flags & ts.SymbolFlags.Value)
        .map((s) => s.name).sort();
}

/* Public member names of a type: not "_", not `prototype`, not inherited from Error. */
function memberNames(checker, type, skip) {
    return checker.getPropertiesOfType(type).map((p) => p.name)
        .filter((n) => !n.startsWith('_') && n !== 'prototype' && !skip.includes(n)).sort();
}

/* Public own and prototype names of a run-time object. */
function runtimeNames(obj, skip) {
    const names = new Set();
    for (let o = obj; o && o !== Object.prototype && o !== Function.prototype &&
        o !== Error.prototype; o = Object.getPrototypeOf(o)) {
        Object.getOwnPropertyNames(o).forEach((n) => names.add(n));
    }
    return [...names].filter((n) => !n.startsWith('_') && !skip.includes(n)).sort();
}

/* Compare two name lists; push a problem for each name only one side has. */
function compare(problems, what, declared, actual) {
    for (const n of declared.filter((x) => !actual.includes(x))) {
        problems.push(`${what}: ${n} is declared but does not exist at run time`);
    }
    for (const n of actual.filter((x) => !declared.includes(x))) {
        problems.push(`${what}: ${n} exists at run time but is not declared`);
    }
    return { declared, actual };
}

async function main() {
    const dir = path.resolve(process.argv[2] || path.join(ROOT, 'php-client', 'js'));
    const { checker, dts, dmts } = typesOf(dir);
    const esm = await import(pathToFileURL(path.join(dir, 'herald.mjs')).href);
    const cjs = require(path.join(dir, 'herald.js'));
    const problems = [];
    const compared = {};
    compared.importExports = compare(problems, 'import (herald.d.mts vs herald.mjs)',
        valueNames(checker, dmts), Object.keys(esm).sort());
    compared.requireExports = compare(problems, 'require (herald.d.ts vs herald.js)',
        valueNames(checker, dts), Object.keys(cjs).filter((n) => !n.startsWith('_')).sort());

    const heraldSym = resolve(checker, dts.find((s) => s.name === 'Herald'));
    const errorSym = resolve(checker, dts.find((s) => s.name === 'HeraldError'));
    const settingsSym = resolve(checker, dts.find((s) => s.name === 'HeraldSettings'));
    const Herald = esm.Herald;
    const fnSkip = ['length', 'name', 'prototype', 'caller', 'arguments'];
    compared.statics = compare(problems, 'Herald statics',
        memberNames(checker, checker.getTypeOfSymbol(heraldSym), []),
        Object.getOwnPropertyNames(Herald).filter((n) => !n.startsWith('_') &&
            !fnSkip.includes(n)).sort());
    const h = new Herald('ws://127.0.0.1:9/ws', { WebSocket: Idle });
    const queued = h.subscribe('doc:1');
    h.close();
    const err = await queued.then(() => null, (e) => e);
    compared.instance = compare(problems, 'Herald instance',
        memberNames(checker, checker.getDeclaredTypeOfSymbol(heraldSym), []),
        runtimeNames(h, ['constructor']));
    compared.error = compare(problems, 'HeraldError instance',
        memberNames(checker, checker.getDeclaredTypeOfSymbol(errorSym),
            ['message', 'stack', 'cause']),
        runtimeNames(err, ['constructor', 'message', 'stack']));
    compared.settings = compare(problems, 'HeraldSettings vs herald.options',
        memberNames(checker, checker.getDeclaredTypeOfSymbol(settingsSym), []),
        Object.keys(h.options).sort());
    if (!(err instanceof esm.HeraldError) || Herald.HeraldError !== esm.HeraldError ||
        esm.default !== Herald) {
        problems.push('herald.mjs: HeraldError or default is not the one Herald has');
    }
    if (cjs.Herald !== cjs || cjs.default !== cjs || typeof cjs.HeraldError !== 'function') {
        problems.push('herald.js: require() does not return the class with Herald and default');
    }
    console.log(JSON.stringify({ ok: problems.length === 0, compared, problems }));
    return problems.length === 0 ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (e) => {
    console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e) }));
    process.exitCode = 2;
});
