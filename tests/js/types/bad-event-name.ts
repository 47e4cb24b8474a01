// An event the map does not have: a typo in the name.
import { Herald } from 'herald-client';

const h = new Herald<{ 'order.shipped': { order: number } }>('wss://shop.test/ws');
h.on('order.shiped', (data) => void data); // error: TS2769
