// A handler that expects another payload than the event map gives.
import { Herald } from 'herald-client';

const h = new Herald<{ 'order.shipped': { order: number } }>('wss://shop.test/ws');
h.on('order.shipped', (data: { order: string }) => data.order.trim()); // error: TS2769
