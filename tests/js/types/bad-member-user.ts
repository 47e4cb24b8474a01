// A member's user id is a string, even when it looks like a number.
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
const first: number = h.members('room:1')[0].user; // error: TS2322
void first;
