// state is the client's to change, not the page's.
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
h.state = 'closed'; // error: TS2540
