// HeraldError.channel is optional: it may be undefined.
import { Herald, HeraldError } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
h.onError((err: HeraldError) => err.channel.toUpperCase()); // error: TS18048
