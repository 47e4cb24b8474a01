// subscribe() without its channel.
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
void h.subscribe(); // error: TS2554
