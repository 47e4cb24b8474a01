// Herald is a class: it must be called with new.
import { Herald } from 'herald-client';

const h = Herald('wss://shop.test/ws'); // error: TS2348
void h;
