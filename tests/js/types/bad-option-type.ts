// An option of the wrong type: backoffBase is a number of milliseconds.
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws', {
    backoffBase: '500', // error: TS2322
});
h.close();
