// rpc<T>() resolves T: using it as another type is caught.
import { Herald } from 'herald-client';

const h = new Herald('wss://shop.test/ws');
void h.rpc<{ id: number }[]>('tasks.list').then((tasks) => tasks.toUpperCase()); // error: TS2339
