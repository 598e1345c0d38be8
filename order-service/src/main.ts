import { runService } from '@civildiy/common/runtime';
import { orderService } from './service.ts';

await runService(orderService);
