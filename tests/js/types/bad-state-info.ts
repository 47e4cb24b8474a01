// info.code exists only when state is 'close'.
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
h.onState((state, info) => {
    if (state === 'open') {
        console.log(info.code); // error: TS2339
    }
});
