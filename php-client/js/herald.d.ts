/*
 * herald.d.ts -- TypeScript types of the Herald browser client (herald.mjs, and herald.js, its
 * classic-script build). The behaviour is described in herald.mjs's opening comment and the
 * frames in docs/protocol.md; this file only gives it types.
 *
 * Resolution: the package's "types", and the types of require('herald-client'): herald.js
 *             exports the class itself, with Herald, HeraldError and default on it, so both
 *             `const { Herald } = require(...)` and `import { Herald } from ...` compiled to
 *             CommonJS work. herald.d.mts re-exports this file for `import` (herald.mjs).
 * Events:     Herald<Events> takes an optional map of event name to payload type; on() then
 *             accepts only those names (and '*') and types each handler's data. Without one,
 *             any name goes and data is `any`.
 * Tests:      tests/integration/63-herald-js-types.py compiles tests/js/types/ok*.ts and
 *             expects each tests/js/types/bad-*.ts to fail with its TS error code;
 *             tests/integration/61-herald-js-package.py checks every name here against the
 *             runtime object (tests/js/dts-check.js).
 */

/** Event name -> payload type; the default allows every name, with `any` data. */
export type EventMap = { [event: string]: any };

/** The smallest WebSocket the client needs: the browser's, or Node's `ws` package. */
export interface WebSocketLike {
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onopen: ((event: any) => void) | null;
    onmessage: ((event: any) => void) | null;
    onerror: ((event: any) => void) | null;
    onclose: ((event: any) => void) | null;
}

/** A WebSocket class: `new (url)` or `new (url, ['herald', 'herald.token.<JWT>'])`. */
export type WebSocketClass = new (url: string, protocols?: string[]) => WebSocketLike;

/** Constructor options; every one is optional. */
export interface HeraldOptions {
    /** A connection token (a JWT from herald_token() in PHP); without it or getToken: anonymous. */
    token?: string | null;
    /** Called before every connection attempt: a token, or a Promise of one; falsy: anonymous. */
    getToken?: () => string | null | undefined | PromiseLike<string | null | undefined>;
    /** true (default): the token goes as the subprotocol "herald.token.<JWT>"; false: ?token=. */
    protocols?: boolean;
    /** First reconnect delay ceiling in ms (500). */
    backoffBase?: number;
    /** Largest reconnect delay ceiling in ms (30000). */
    backoffMax?: number;
    /** Ms a connection must stay open to reset the backoff (10000). */
    stableAfter?: number;
    /** Default rpc() timeout in ms (15000); 0: wait for Herald's own rpc_timeout. */
    rpcTimeout?: number;
    /** The WebSocket class to use (default: the global one), e.g. the `ws` package in Node. */
    WebSocket?: WebSocketClass;
}

/** The options in force: the given ones over the defaults. */
export interface HeraldSettings {
    readonly protocols: boolean;
    readonly backoffBase: number;
    readonly backoffMax: number;
    readonly stableAfter: number;
    readonly rpcTimeout: number;
}

/** herald.state: 'closed' only after close(). */
export type HeraldState = 'connecting' | 'open' | 'closed';

/** What onState handlers get, (state, info), told apart by state. */
export type StateChange =
    /** An attempt starts; retry is null for the first one, else the backoff step it waited for. */
    | [state: 'connecting', info: { retry: number | null }]
    /** The WebSocket is open; remembered channels and queued commands were just sent. */
    | [state: 'open', info: {}]
    /** It closed: code is null if none was opened; retryIn is null after close(). */
    | [state: 'close', info: { code: number | null; reason: string; retryIn: number | null }]
    /** getToken() failed, the WebSocket could not be made, or the socket reported an error. */
    | [state: 'error', info: { error: unknown }];

/** The states onState() reports. */
export type StateName = StateChange[0];

/**
 * A handler for onState(): fn(state, info), with info narrowed by comparing state. A handler
 * that takes state alone is the second form (TypeScript cannot fit it to the first).
 */
export type StateHandler = ((...change: StateChange) => void) | ((state: StateName) => void);

/** The third argument of on() handlers: where a message came from. */
export interface MessageMeta {
    /** The channel of a channel publish, else undefined. */
    channel: string | undefined;
    /** The verified user id of the client that published it, else undefined. */
    from: string | undefined;
    /** The message's id in its stream ("<epoch>:<offset>"), else undefined (a broadcast). */
    id: string | undefined;
}

/** A handler for on(event): fn(data, event, meta). */
export type EventHandler<E extends EventMap, K extends keyof E & string> =
    (data: E[K], event: K, meta: MessageMeta) => void;

/** A handler for on('*'): every event of the map. */
export type AnyEventHandler<E extends EventMap> =
    (data: E[keyof E], event: keyof E & string, meta: MessageMeta) => void;

/** A member of a presence channel; info is what its token gave (null when none). */
export interface Member<Info = any> {
    user: string;
    info: Info | null;
}

/** What subscribe() resolves: members only on a presence channel (the subscriber included). */
export interface SubscribeResult {
    members?: Member[];
}

/** subscribe() options. */
export interface SubscribeOptions {
    /** A channel token (herald_channel_token() in PHP), for channels that need one. */
    token?: string;
}

/** publish() options. */
export interface PublishOptions {
    /** The event name receivers see ('message'). */
    event?: string;
    /** false: skip this connection (not the user's other tabs). Default true. */
    echo?: boolean;
}

/** rpc() options. */
export interface RpcOptions {
    /** Reject with 'timeout' after this many ms (rpcTimeout); 0: no limit here. */
    timeout?: number;
}

/** herald.position(): the last id seen per stream, for debugging. */
export interface Position {
    /** The user stream's last id ("<epoch>:<offset>"), or null. */
    user: string | null;
    /** Each remembered channel's last id, or null when none yet. */
    channels: { [channel: string]: string | null };
}

/** Error codes from docs/protocol.md and the client's own; PHP's herald_rpc_error() adds any. */
export type HeraldErrorCode =
    | 'disconnected' | 'timeout' | 'unknown'
    | 'bad_json' | 'bad_command' | 'bad_channel' | 'forbidden' | 'bad_token' | 'not_subscribed'
    | 'too_many_subscriptions' | 'rpc_disabled' | 'rpc_busy' | 'rpc_unavailable' | 'rpc_timeout'
    | 'rpc_failed' | 'rpc_bad_reply' | 'rate_limited'
    | (string & {});

/** A refused or failed command, or an error no promise could take (onError). */
export declare class HeraldError extends Error {
    constructor(code: HeraldErrorCode, message?: string);
    readonly name: 'HeraldError';
    /** One of HeraldErrorCode, or a code of PHP's own. */
    code: HeraldErrorCode;
    /** The channel, for subscribe, unsubscribe, publish and refused resubscriptions. */
    channel?: string;
}

/** A connection to Herald, kept open (reconnecting with backoff) until close(). */
export declare class Herald<E extends EventMap = EventMap> {
    /** url: ws:// or wss://, Herald's ws_path; it starts connecting on the next tick. */
    constructor(url: string, options?: HeraldOptions);

    /** HeraldError, also reachable from the class (the global build has no second global). */
    static readonly HeraldError: typeof HeraldError;

    readonly url: string;
    readonly options: HeraldSettings;
    readonly state: HeraldState;

    /** Call fn(data, event, meta) for every message named event, or for all with '*'. */
    on(event: '*', fn: AnyEventHandler<E>): this;
    on<K extends keyof E & string>(event: K, fn: EventHandler<E, K>): this;
    /** Remove a handler added with on(event, fn); without fn every one for event. */
    off(event: '*', fn?: AnyEventHandler<E>): this;
    off<K extends keyof E & string>(event: K, fn?: EventHandler<E, K>): this;

    /** Call fn(state, info) on every lifecycle change. */
    onState(fn: (...change: StateChange) => void): this;
    onState(fn: (state: StateName) => void): this;
    offState(fn: StateHandler): this;

    /** Call fn(kind, channel, member) for every presence join and leave. */
    onPresence(fn: (kind: 'join' | 'leave', channel: string, member: Member) => void): this;
    offPresence(fn: (kind: 'join' | 'leave', channel: string, member: Member) => void): this;

    /** Call fn(err) for errors no promise can take; without a handler they go to console.warn. */
    onError(fn: (err: HeraldError) => void): this;
    offError(fn: (err: HeraldError) => void): this;

    /**
     * Call fn(stream, recovered) after each reconnect, once per stream: null for the user's
     * own stream, else the channel; recovered false means messages may have been lost.
     */
    onRecover(fn: (stream: string | null, recovered: boolean) => void): this;
    offRecover(fn: (stream: string | null, recovered: boolean) => void): this;

    /** Where the client stands: the last id of the user stream and of each channel. */
    position(): Position;

    /** Subscribe (queued while not open) and remember the channel for every reconnect. */
    subscribe(channel: string, options?: SubscribeOptions): Promise<SubscribeResult>;
    /** Unsubscribe and forget the channel (queued while not open). */
    unsubscribe(channel: string): Promise<void>;
    /** Publish data (JSON; undefined sends null) into a client_publish channel. */
    publish(channel: string, data?: unknown, options?: PublishOptions): Promise<void>;
    /** Call method in PHP with data; resolves the reply's data. */
    rpc<T = any>(method: string, data?: unknown, options?: RpcOptions): Promise<T>;
    /** The members of a subscribed presence channel (a copy), else []. */
    members(channel: string): Member[];
    /** Close with 1000 and stop reconnecting, for good. */
    close(): void;
}

export default Herald;
