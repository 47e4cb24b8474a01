// A misspelt option of publish().
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
void h.publish('chat:1', { text: 'hi' }, { evnt: 'chat' }); // error: TS2561
