// onRecover's stream is null for the user's own stream: a handler must take null.
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
h.onRecover((stream: string) => stream.length); // error: TS2345
