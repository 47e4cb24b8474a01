// A lifecycle state that does not exist ('open', not 'opened').
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
h.onState((state) => {
    if (state === 'opened') { // error: TS2367
        h.close();
    }
});
